"""Worse pictures for `eval video --degrade`: does tracking hold up in a dim room, with a small face, or with
motion blur and heavy compression?

Webcams in real rooms give darker, noisier, smaller and blurrier faces than the shared clips. Each degradation
makes that from a clean frame, reproducibly (seeded noise): the tracker and MediaPipe's blendshapes (the peer)
see the degraded frame, while the dlib reference that the coefficients are compared with reads the clean one.
So the figures say how well the true mouth and eye state is followed through a bad picture, not how well two
detectors agree about one.
"""

from __future__ import annotations

import cv2
import numpy as np

from facetrack.errors import FacetrackError

# dim: the picture darkened (values in [0, 1] to the power DIM_GAMMA, times DIM_GAIN: mid-grey 128 becomes 42)
# with the sensor noise a webcam shows in a dim room (Gaussian, DIM_NOISE of 255)
DIM_GAMMA, DIM_GAIN, DIM_NOISE = 1.6, 0.5, 7.0
SMALL_SCALE = 0.3  # small: the frame shrunk to this share (a face of 230 px becomes about 70 px)
BLUR_PX, BLUR_JPEG = 9, 25  # blur: horizontal motion blur over this many pixels, then JPEG at this quality
NAMES = ("dim", "small", "blur")


class Degradation:
    """One named degradation, applied frame by frame; `scale` maps clean pixels to degraded ones."""

    def __init__(self, name: str, seed: int = 0) -> None:
        if name not in NAMES:
            raise FacetrackError(f"unknown degradation {name!r} (one of {', '.join(NAMES)})")
        self.name = name
        self.scale = SMALL_SCALE if name == "small" else 1.0
        self._rng = np.random.default_rng(seed)
        self._kernel = np.full((1, BLUR_PX), 1.0 / BLUR_PX, np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The degraded copy of a (H, W, 3) uint8 RGB frame."""
        if self.name == "dim":
            light = (rgb.astype(np.float32) / 255.0) ** DIM_GAMMA * (DIM_GAIN * 255.0)
            light += self._rng.normal(0.0, DIM_NOISE, rgb.shape).astype(np.float32)
            return np.clip(light + 0.5, 0, 255).astype(np.uint8)
        if self.name == "small":
            h, w = rgb.shape[:2]
            size = (max(1, round(w * SMALL_SCALE)), max(1, round(h * SMALL_SCALE)))
            return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        blurred = cv2.filter2D(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), -1, self._kernel)
        _, jpeg = cv2.imencode(".jpg", blurred, [cv2.IMWRITE_JPEG_QUALITY, BLUR_JPEG])
        return cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
