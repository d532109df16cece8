"""Face boxes: OpenCV's Haar cascade as in the paper, dlib's HOG detector when the cascade finds none."""

from __future__ import annotations

import cv2
import numpy as np

from facetrack.errors import FacetrackError

Box = tuple[int, int, int, int]  # x, y, w, h in image pixels


class FaceDetector:
    """Largest face first; `min_size` in pixels."""

    def __init__(self, min_size: int = 60) -> None:
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.haar = cv2.CascadeClassifier(path)
        if self.haar.empty():
            raise FacetrackError(f"cannot load the Haar cascade: {path}")
        import dlib

        self.hog = dlib.get_frontal_face_detector()
        self.min_size = min_size

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        boxes = [tuple(int(v) for v in b) for b in self.haar.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size))]
        if not boxes:
            boxes = [(r.left(), r.top(), r.width(), r.height()) for r in self.hog(gray, 0)
                     if r.width() >= self.min_size]
        return sorted(boxes, key=lambda b: -b[2] * b[3])
