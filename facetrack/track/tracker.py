"""Per-frame tracking of images: find or track the face, crop, run the encoder, reconstruct.

The face box of a frame comes from the previous frame's reconstruction (its projected landmarks), and
detection runs again only when the face is lost; with several faces, the largest is taken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from facetrack.net.runtime import make_backend
from facetrack.net.weights import Weights
from facetrack.render.camera import Camera
from facetrack.render.reconstruction import NOTHING, Needs, Reconstruction, Reconstructor
from facetrack.vision.crop import CropBox
from facetrack.vision.faces import Face, FaceFinder


@dataclass
class FrameResult:
    """A frame's reconstruction and where it sits in the frame; `face` is None for replayed frames."""

    recon: Reconstruction
    box: CropBox  # the 240x240 crop in input-image pixels
    face: Face | None = None  # crop, detected landmarks, detector box
    ms: dict[str, float] = field(default_factory=dict)  # time per stage
    photometric: dict[str, float] = field(default_factory=dict)  # per level, computed or recorded

    @property
    def x(self) -> np.ndarray:
        return self.recon.x

    @property
    def landmarks_image(self) -> np.ndarray:
        """(68, 2) final-level model landmarks in input-image pixels."""
        return self.box.to_image(self.recon.landmarks.astype(np.float64))


class Tracker:
    """Callable on RGB frames; keeps the previous frame's landmarks for tracking."""

    def __init__(self, weights: Weights, backend: str = "auto", landmarks: str = "auto") -> None:
        self.weights = weights
        self.model = weights.model.cpu().eval()
        self.backend = make_backend(weights, backend)
        self.finder = FaceFinder(landmarks)
        self.camera = Camera()
        self.reconstruct = Reconstructor(self.model, self.camera)
        self.previous: np.ndarray | None = None

    def reset(self) -> None:
        self.previous = None

    def __call__(self, rgb: np.ndarray, pad: float = 0.0, needs: Needs = NOTHING) -> FrameResult | None:
        t0 = time.perf_counter()
        face = self.finder(rgb, pad=pad, previous=self.previous)
        t1 = time.perf_counter()
        if face is None:
            self.previous = None
            return None
        x = self.backend(face.crop[None])[0]
        t2 = time.perf_counter()
        recon = self.reconstruct(x, needs, face.crop)
        result = FrameResult(recon, face.box, face, photometric=recon.photometric())
        self.previous = result.landmarks_image
        result.ms = {"detect_landmarks": 1e3 * (t1 - t0), "encoder": 1e3 * (t2 - t1),
                     "model": 1e3 * (time.perf_counter() - t2)}
        return result
