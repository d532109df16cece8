"""Reading the training cache written by train.prepare."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from facetrack.errors import FacetrackError


class CropDataset(Dataset):
    """Crops of one split as (3, 240, 240) float tensors in [0, 1] with landmarks and confidences."""

    def __init__(self, cache: Path, split: str = "train") -> None:
        index = cache / "index.json"
        if not index.is_file():
            raise FacetrackError(f"no training cache at {cache} (run python -m train.prepare)")
        shards = json.loads(index.read_text())["shards"]
        blobs, lms, confs, names = [], [], [], []
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
        self.jpegs = blobs
        self.landmarks = np.concatenate(lms) if lms else np.zeros((0, 68, 2), np.float32)
        self.confidence = np.concatenate(confs) if confs else np.zeros((0, 68), np.float32)
        self.names = names

    def __len__(self) -> int:
        return len(self.jpegs)

    def image(self, i: int) -> np.ndarray:
        """RGB uint8 crop."""
        return cv2.cvtColor(cv2.imdecode(self.jpegs[i], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        img = torch.from_numpy(self.image(i)).permute(2, 0, 1).float() / 255.0
        return {"image": img, "landmarks": torch.from_numpy(self.landmarks[i]),
                "confidence": torch.from_numpy(self.confidence[i]), "index": torch.tensor(i)}
