"""Identity embeddings: dlib's 128-D face-recognition network (ResNet, 99.38% on LFW).

Used to ask whether a rendering still looks like the person in the photo (GANFIT-style identity
preservation). dlib calls two faces the same person when the Euclidean distance of their embeddings is
below 0.6; we report the cosine of the embeddings as well.
"""

from __future__ import annotations

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.vision.landmarks import dlib_models_dir

SAME_PERSON_DISTANCE = 0.6  # dlib's threshold on the Euclidean distance of two embeddings


class FaceEmbedder:
    """128-D embedding of the face inside a box, aligned by dlib's 68-point predictor."""

    def __init__(self) -> None:
        import dlib

        models = dlib_models_dir()
        paths = [models / "dlib_face_recognition_resnet_model_v1.dat", models / "shape_predictor_68_face_landmarks.dat"]
        for path in paths:
            if not path.is_file():
                raise FacetrackError(f"dlib model not found: {path}")
        self._dlib = dlib
        self.net = dlib.face_recognition_model_v1(str(paths[0]))
        self.predictor = dlib.shape_predictor(str(paths[1]))

    def __call__(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """(128,) embedding of the face in `box` (x, y, w, h) of a uint8 RGB image."""
        x, y, w, h = (int(round(v)) for v in box)
        img = np.ascontiguousarray(rgb)
        shape = self.predictor(img, self._dlib.rectangle(x, y, x + w, y + h))
        return np.asarray(self.net.compute_face_descriptor(img, shape), np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def same_person(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.linalg.norm(a - b) < SAME_PERSON_DISTANCE)
