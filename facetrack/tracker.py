"""Per-frame reconstruction: find or track the face, crop, run the encoder, evaluate both levels.

The face box of a frame comes from the previous frame's reconstruction (its projected landmarks), and
detection runs again only when the face is lost; with several faces, the largest is taken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from facetrack.losses import photometric_l21
from facetrack.render.camera import Camera
from facetrack.render.formation import View, views
from facetrack.runtime import make_backend
from facetrack.vision.crop import CropBox
from facetrack.vision.faces import Face, FaceFinder
from facetrack.weights import Weights


@dataclass
class FrameResult:
    x: np.ndarray  # (D,) parameter vector
    face: Face  # crop, detected landmarks, crop box
    base: View  # batch of one
    final: View
    photo_base: float
    photo_final: float
    landmarks_image: np.ndarray  # (68, 2) final-level model landmarks in input-image pixels
    ms: dict[str, float] = field(default_factory=dict)  # time per stage


class Tracker:
    """Callable on RGB frames; keeps the previous frame's reconstruction for tracking."""

    def __init__(self, weights: Weights, backend: str = "auto", landmarks: str = "auto") -> None:
        self.weights = weights
        self.model = weights.model.cpu().eval()
        self.backend = make_backend(weights, backend)
        self.finder = FaceFinder(landmarks)
        self.camera = Camera()
        self.previous: np.ndarray | None = None

    def reset(self) -> None:
        self.previous = None

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray, pad: float = 0.0) -> FrameResult | None:
        t0 = time.perf_counter()
        face = self.finder(rgb, pad=pad, previous=self.previous)
        t1 = time.perf_counter()
        if face is None:
            self.previous = None
            return None
        x = self.backend(face.crop[None])
        t2 = time.perf_counter()
        xt = torch.from_numpy(x).float()
        p = self.model.params(xt)
        vb, vf = views(self.model(p), p, self.model.triangles, self.camera)
        image = torch.from_numpy(face.crop).permute(2, 0, 1)[None].float() / 255.0
        pb = float(photometric_l21(image, vb, self.model.photo_mask)[0])
        pf = float(photometric_l21(image, vf, self.model.photo_mask)[0])
        lm_crop = vf.uv[0, self.model.landmarks].numpy()
        lm_image = face.box.to_image(lm_crop)
        self.previous = lm_image
        t3 = time.perf_counter()
        ms = {"detect_landmarks": 1e3 * (t1 - t0), "encoder": 1e3 * (t2 - t1), "model": 1e3 * (t3 - t2)}
        return FrameResult(x[0], face, vb, vf, pb, pf, lm_image, ms)


def crop_box_json(box: CropBox) -> dict:
    return {"cx": box.cx, "cy": box.cy, "side": box.side}
