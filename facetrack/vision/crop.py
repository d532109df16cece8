"""The 240x240 crop the encoder sees, framed the way the model's default pose is framed.

A crop is a square box in the input image. We place it from the 68 landmarks so that a face lands where
the mean face at the default translation lands (facetrack.render.camera.DEFAULT_TRANSLATION): the box
side is CROP_PER_FACE times the larger side of the landmarks' bounding box and its centre sits
CENTRE_SHIFT box sides above theirs. Training, fitting and the app all crop through here.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facetrack.render.camera import CROP_SIZE

CROP_PER_FACE = 1.8146  # crop side / landmark box side, measured on the mean face (tests check it)
CENTRE_SHIFT = -0.0487  # vertical offset of the crop centre from the landmark box centre, per landmark box side


@dataclass(frozen=True)
class CropBox:
    """Square box: centre (cx, cy) and side in input-image pixels."""

    cx: float
    cy: float
    side: float

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return CROP_SIZE / self.side

    def to_crop(self, pts: np.ndarray) -> np.ndarray:
        """Image pixel coordinates to crop pixel coordinates."""
        origin = np.array([self.cx - self.side / 2, self.cy - self.side / 2])
        return (pts - origin) * self.scale

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        origin = np.array([self.cx - self.side / 2, self.cy - self.side / 2])
        return pts / self.scale + origin

    def affine(self, size: int = CROP_SIZE) -> np.ndarray:
        """(2, 3) matrix from image pixel indices to crop pixel indices (for cv2.warpAffine).

        Continuous coordinates put pixel centres at k + 0.5, so both sides are shifted by half a pixel.
        """
        s = size / self.side
        return np.array([[s, 0, -(self.cx - self.side / 2) * s + 0.5 * s - 0.5],
                         [0, s, -(self.cy - self.side / 2) * s + 0.5 * s - 0.5]], np.float64)

    def outside_fraction(self, width: int, height: int) -> float:
        """Share of the box that lies outside the image (filled by padding)."""
        x0, y0 = self.cx - self.side / 2, self.cy - self.side / 2
        ix = max(0.0, min(x0 + self.side, width) - max(x0, 0.0))
        iy = max(0.0, min(y0 + self.side, height) - max(y0, 0.0))
        return 1.0 - ix * iy / self.side**2


def box_from_landmarks(lm: np.ndarray) -> CropBox:
    """The crop box for (68, 2) landmarks in image pixels."""
    lo, hi = lm.min(axis=0), lm.max(axis=0)
    size = float(max(hi - lo))
    c = (lo + hi) / 2
    return CropBox(float(c[0]), float(c[1] + CENTRE_SHIFT * size), CROP_PER_FACE * size)


def face_size(landmarks: np.ndarray) -> np.ndarray:
    """sqrt(w * h) of the landmarks' bounding box, (..., N, 2) -> (...): a face's size in pixels (the NME's
    normalizer, the tracker's measure when it compares faces)."""
    ext = landmarks.max(-2) - landmarks.min(-2)
    return np.sqrt(ext[..., 0] * ext[..., 1])


def points_box(pts: np.ndarray) -> tuple[int, int, int, int]:
    """(x, y, w, h) integer bounding box of (N, 2) image points: the box a landmark predictor is given."""
    lo, hi = pts.min(0), pts.max(0)
    return int(lo[0]), int(lo[1]), int(hi[0] - lo[0]), int(hi[1] - lo[1])


def pad_border(rgb: np.ndarray, pad: float) -> tuple[np.ndarray, int]:
    """The image with `pad` (a fraction of its larger side) of replicated border on every side, and that border
    in pixels: tightly cropped photos (UTKFace) cut chins and foreheads, which detectors need."""
    p = int(pad * max(rgb.shape[:2]))
    return (cv2.copyMakeBorder(rgb, p, p, p, p, cv2.BORDER_REPLICATE) if p else rgb), p


def box_from_face_box(x: float, y: float, w: float, h: float) -> CropBox:
    """A crop box from a detector box, before landmarks are known (a detector box is about the landmarks')."""
    return CropBox(x + w / 2, y + h / 2 + CENTRE_SHIFT * max(w, h), CROP_PER_FACE * max(w, h))


def crop(image: np.ndarray, box: CropBox, size: int = CROP_SIZE) -> np.ndarray:
    """Resample the box to a size x size image; parts outside the image are replicated from its border."""
    s = size / box.side
    M = box.affine(size)
    if s < 0.5:  # large faces: low-pass first so the bilinear resampling does not alias. Only the part of
        sigma = 0.5 / s  # the frame that the box samples is blurred (a face close to a 1080p camera would
        r = int(np.ceil(3 * sigma)) + 2  # otherwise blur the whole frame); the same pixels come out
        h, w = image.shape[:2]
        x0, y0 = max(int(box.cx - box.side / 2) - r, 0), max(int(box.cy - box.side / 2) - r, 0)
        x1, y1 = min(int(box.cx + box.side / 2) + r + 1, w), min(int(box.cy + box.side / 2) + r + 1, h)
        if x0 < x1 and y0 < y1:
            image = cv2.GaussianBlur(image[y0:y1, x0:x1], (0, 0), sigma)
            M = M.copy()
            M[:, 2] += M[:, :2] @ np.array([x0, y0], np.float64)
        else:
            image = cv2.GaussianBlur(image, (0, 0), sigma)
    return cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
