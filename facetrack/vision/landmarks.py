"""68 facial landmarks with a per-point confidence.

dlib's shape predictor is the default (its model ships in the `face-recognition-models` package).
dlib gives no confidence, so we run it on the image and on its mirror image: a point the two runs agree
on is trusted, one they disagree on (occluded, blurred, far off) is not. face-alignment's FAN is used
instead when its weights are already on disk (it never downloads here); its heatmap peaks are the
confidence.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from facetrack import paths
from facetrack.errors import FacetrackError
from facetrack.vision.detect import Box

# Index of each point's mirror partner in the Multi-PIE 68 scheme.
MIRROR_68 = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48] + [59, 58, 57, 56, 55] + [64, 63, 62, 61, 60] + [67, 66, 65]
)
FLIP_SCALE = 0.03  # disagreement, as a fraction of the face size, at which confidence falls to 1/e


def dlib_models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FacetrackError("dlib's models are missing: pip install face-recognition-models")
    return Path(spec.submodule_search_locations[0]) / "models"


class DlibLandmarks:
    """dlib 68-point predictor with flip-consistency confidence."""

    name = "dlib"

    def __init__(self) -> None:
        import dlib

        path = dlib_models_dir() / "shape_predictor_68_face_landmarks.dat"
        if not path.is_file():
            raise FacetrackError(f"dlib landmark model not found: {path}")
        self._dlib = dlib
        self.predictor = dlib.shape_predictor(str(path))

    def _predict(self, gray: np.ndarray, box: Box) -> np.ndarray:
        x, y, w, h = box
        shape = self.predictor(gray, self._dlib.rectangle(int(x), int(y), int(x + w), int(y + h)))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def raw(self, gray: np.ndarray, box: Box) -> np.ndarray:
        """One plain pass of the predictor, (68, 2) image pixels: the reference for jitter figures."""
        return self._predict(gray, box) + 0.5

    def __call__(self, gray: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """(68, 2) image pixels (pixel centres at k + 0.5) and (68,) confidence in [0, 1]."""
        W = gray.shape[1]
        pts = self._predict(gray, box)
        x, y, w, h = box
        flipped = self._predict(np.ascontiguousarray(gray[:, ::-1]), (W - x - w, y, w, h))
        back = flipped[MIRROR_68].copy()
        back[:, 0] = W - 1 - back[:, 0]
        size = max(float(np.ptp(pts[:, 0])), float(np.ptp(pts[:, 1])), 1.0)
        disagreement = np.linalg.norm(pts - back, axis=1) / size
        conf = np.exp(-((disagreement / FLIP_SCALE) ** 2)).astype(np.float32)
        return (pts + back) / 2 + 0.5, conf


class FanLandmarks:
    """face-alignment's FAN (2D), only when its weights are already in $TORCH_HOME/hub/checkpoints."""

    name = "fan"

    def __init__(self) -> None:
        import face_alignment

        self.fa = face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device="cpu",
                                               face_detector="blazeface")

    def __call__(self, gray: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
        x, y, w, h = box
        rgb = np.repeat(gray[..., None], 3, axis=2)
        pts, scores, _ = self.fa.get_landmarks_from_image(rgb, detected_faces=[(x, y, x + w, y + h)],
                                                          return_landmark_score=True)
        if not pts:
            return np.zeros((68, 2), np.float32), np.zeros(68, np.float32)
        return pts[0].astype(np.float32) + 0.5, np.clip(scores[0], 0, 1).astype(np.float32)

    def raw(self, gray: np.ndarray, box: Box) -> np.ndarray:
        """FAN has no mirror pass: its plain output."""
        return self(gray, box)[0]


def fan_weights_present() -> bool:
    hub = paths.torch_hub_checkpoints()
    return hub.is_dir() and any(p.name.startswith("2DFAN4") for p in hub.iterdir())


def landmark_detector(kind: str = "auto"):
    """`dlib`, `fan`, or `auto` (FAN when face-alignment and its weights are present, else dlib)."""
    if kind == "fan" or (kind == "auto" and fan_weights_present()
                         and importlib.util.find_spec("face_alignment") is not None):
        return FanLandmarks()
    return DlibLandmarks()
