"""From an image to the encoder's input: detect (or track), landmarks, confidence, 240x240 crop."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facetrack.vision.crop import CropBox, box_from_landmarks, crop, pad_border, points_box
from facetrack.vision.detect import FaceDetector
from facetrack.vision.landmarks import landmark_detector


@dataclass
class Face:
    crop: np.ndarray  # (240, 240, 3) uint8 RGB
    landmarks: np.ndarray  # (68, 2) in crop pixels
    confidence: np.ndarray  # (68,)
    box: CropBox  # the crop in input-image pixels
    image_landmarks: np.ndarray  # (68, 2) in input-image pixels
    source_box: tuple[int, int, int, int] | None = None  # the detector or tracked box the landmarks came from


MIN_CONTRAST = 4.0  # grey-level SD below which a tracked box holds no face (a black or frozen frame)


def _flat(gray: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """True when the box is (nearly) uniform: the predictor still returns symmetric, 'confident' points there."""
    x, y, w, h = box
    patch = gray[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)]
    return patch.size == 0 or float(patch.std()) < MIN_CONTRAST


class FaceFinder:
    """Finds the largest face; with `previous` landmarks it tracks instead of detecting (re-detects when the
    tracked face's confidence falls below `min_confidence`)."""

    def __init__(self, landmarks: str = "auto", min_confidence: float = 0.35) -> None:
        self.detector = FaceDetector()
        self.landmarks = landmark_detector(landmarks)
        self.min_confidence = min_confidence

    def __call__(self, rgb: np.ndarray, pad: float = 0.0, previous: np.ndarray | None = None) -> Face | None:
        """`pad` (fraction of the image size) adds replicated border first, for tightly cropped photos."""
        img, p = pad_border(rgb, pad)
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        face = None
        if previous is not None:
            face = self._from_box(img, gray, points_box(previous + p))
            if face is not None and (face.confidence.mean() < self.min_confidence or _flat(gray, face.source_box)):
                face = None
        if face is None:
            boxes = self.detector(img)
            if not boxes:
                return None
            face = self._from_box(img, gray, boxes[0])
        if p:
            face.image_landmarks = face.image_landmarks - p
            face.box = CropBox(face.box.cx - p, face.box.cy - p, face.box.side)
            x, y, w, h = face.source_box
            face.source_box = (x - p, y - p, w, h)
        return face

    def _from_box(self, img: np.ndarray, gray: np.ndarray, box) -> Face | None:
        if box[2] < 8 or box[3] < 8:
            return None
        lm, conf = self.landmarks(gray, box)
        cbox = box_from_landmarks(lm)
        return Face(crop(img, cbox), cbox.to_crop(lm).astype(np.float32), conf, cbox, lm, tuple(int(v) for v in box))
