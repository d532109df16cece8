"""Reading the training cache written by train.prepare."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from facetrack.errors import FacetrackError
from facetrack.model.layout import ParamLayout
from facetrack.vision.landmarks import MIRROR_68
from train.prepare import crop_rgb


@dataclass(frozen=True)
class Augment:
    """Random changes to a training crop and its landmarks. The shipped data (aligned UTKFace photos) has
    almost no roll and little yaw, so without them the encoder learns a nearly constant head rotation and
    lets identity and expression imitate the pose. `flip`: probability of a mirror image (landmarks swap
    sides); `rotate_deg`: in-plane rotation range; `scale`, `shift_px`: framing jitter, as tracking gives."""

    flip: float = 0.0
    rotate_deg: float = 0.0
    scale: float = 0.0
    shift_px: float = 0.0

    def __call__(self, img: np.ndarray, lm: np.ndarray, conf: np.ndarray, rng: np.random.Generator,
                 dense: np.ndarray | None = None, mirror: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Change]:
        """uint8 (H, W, 3) crop, (68, 2) landmarks (pixel centres at k + 0.5), (68,) confidences, and optional
        (468, 2) dense landmarks (moved like the 68; in a mirror image they swap partners by `mirror`, else
        they no longer apply); returns them changed and what was done."""
        H, W = img.shape[:2]
        flipped = bool(self.flip and rng.random() < self.flip)
        if flipped:
            img = np.ascontiguousarray(img[:, ::-1])
            lm = lm[MIRROR_68].copy()
            lm[:, 0] = W - lm[:, 0]
            conf = conf[MIRROR_68]
            if dense is not None and mirror is not None:
                dense = dense[mirror].copy()
                dense[:, 0] = W - dense[:, 0]
        angle = rng.uniform(-self.rotate_deg, self.rotate_deg) if self.rotate_deg else 0.0
        scale = float(np.exp(rng.uniform(-self.scale, self.scale))) if self.scale else 1.0
        shift = rng.uniform(-self.shift_px, self.shift_px, 2) if self.shift_px else np.zeros(2)
        if angle or scale != 1.0 or shift.any():
            M = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, scale)  # about the centre, pixel indices
            M[:, 2] += shift
            img = cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            lm = (lm - 0.5) @ M[:, :2].T + M[:, 2] + 0.5
            if dense is not None:
                dense = (dense - 0.5) @ M[:, :2].T + M[:, 2] + 0.5
        return img, lm.astype(np.float32), conf, Change(flipped, float(angle), dense)


@dataclass(frozen=True)
class Change:
    """What an augmentation did: a mirror image (the labels then describe the mirrored face: train.losses
    swaps sides), and the in-plane rotation in degrees (counter-clockwise on screen), which adds to the
    head's roll and leaves pitch and yaw as they were (our Euler order puts roll outermost)."""

    flipped: bool
    angle_deg: float
    dense: np.ndarray | None = None


class CropDataset(Dataset):
    """Crops of one split as (3, 240, 240) float tensors in [0, 1] with landmarks and confidences."""

    def __init__(self, cache: Path, split: str = "train", augment: Augment | None = None, seed: int = 0,
                 mirror: np.ndarray | None = None) -> None:
        """`mirror`: the dense landmarks' mirror partners (Correspondence.mirror); without it a mirror image
        carries no labels."""
        index = cache / "index.json"
        if not index.is_file():
            raise FacetrackError(f"no training cache at {cache} (run python -m train.prepare)")
        shards = json.loads(index.read_text())["shards"]
        blobs, lms, confs, names = [], [], [], []
        labels: dict[str, list[np.ndarray]] = {"dense": [], "pseudo": []}
        for name in shards:
            with np.load(cache / name) as z:
                keep = z["val"] if split == "val" else ~z["val"]
                o = z["offsets"]
                jpeg = z["jpeg"]
                for i in np.flatnonzero(keep):
                    blobs.append(jpeg[o[i] : o[i + 1]].copy())
                lms.append(z["landmarks"][keep])
                confs.append(z["confidence"][keep])
                names.extend(z["names"][keep].tolist())
                for k in labels:
                    if k in z.files:
                        labels[k].append(z[k][keep])
        # dense landmarks and pseudo-labels (train.prepare --landmarker), when every shard has them
        self.dense = np.concatenate(labels["dense"]) if labels["dense"] and len(labels["dense"]) == len(shards) \
            else None
        self.pseudo = None
        if labels["pseudo"] and len(labels["pseudo"]) == len(shards):  # shards labelled before and after the
            width = max(p.shape[-1] for p in labels["pseudo"])  # correctives grew: lined up by zero-padding
            self.pseudo = np.concatenate([ParamLayout.widen(p, width) for p in labels["pseudo"]])
        self.jpegs = blobs
        self.landmarks = np.concatenate(lms) if lms else np.zeros((0, 68, 2), np.float32)
        self.confidence = np.concatenate(confs) if confs else np.zeros((0, 68), np.float32)
        self.names = names
        self.augment = augment
        self.mirror = mirror
        self.rng = np.random.default_rng(seed)  # per worker process: each gets its own copy, reseeded below

    def __len__(self) -> int:
        return len(self.jpegs)

    def image(self, i: int) -> np.ndarray:
        """RGB uint8 crop."""
        rgb = crop_rgb(self.jpegs[i])
        if rgb is None:
            raise FacetrackError(f"unreadable crop in the cache: {self.names[i]}")
        return rgb

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img, lm, conf = self.image(i), self.landmarks[i], self.confidence[i]
        dense = self.dense[i] if self.dense is not None else None
        change = Change(False, 0.0, dense)
        if self.augment is not None:
            info = torch.utils.data.get_worker_info()
            if info is not None and not getattr(self, "_reseeded", False):
                self.rng, self._reseeded = np.random.default_rng([info.seed % 2**32]), True
            img, lm, conf, change = self.augment(img, lm, conf, self.rng, dense, self.mirror)
        out = {"image": torch.from_numpy(img).permute(2, 0, 1).float() / 255.0, "landmarks": torch.from_numpy(lm),
               "confidence": torch.from_numpy(np.ascontiguousarray(conf)), "index": torch.tensor(i)}
        if self.dense is not None and self.pseudo is not None:
            out["dense"] = torch.from_numpy(np.asarray(change.dense, np.float32))
            out["pseudo"] = torch.from_numpy(self.pseudo[i].copy())
            out["roll_add"] = torch.tensor(np.radians(change.angle_deg), dtype=torch.float32)
            out["flipped"] = torch.tensor(1.0 if change.flipped else 0.0)
            out["labelled"] = torch.tensor(0.0 if change.flipped and self.mirror is None else 1.0)
        return out
