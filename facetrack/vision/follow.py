"""MediaPipe's landmark model run on the face's box from the previous frame: the stream path of the front end.

MediaPipe's Face Landmarker finds a face in two steps, a face detector (BlazeFace) and the landmark model on a
square box about the face. In a stream its VIDEO graph can skip the detector and take the box from the last
frame's landmarks, but then (with num_faces=1) it also smooths the landmarks, and that smoothing lags blinks
and mouths: on the eight shared clips r(jawOpen) 0.82 against 0.96 without it. With num_faces > 1, which
facetrack.vision.dense asks for, it runs the detector on every frame instead (the same landmarks as IMAGE
mode), and the whole call took 15-16 ms a 512x512 frame here, the landmark model alone 6-7 ms.

`LandmarkFollower` does what MediaPipe's tracking does, without the smoothing: the box is the previous
landmarks' bounding square, 1.5 times as large and turned with the eye line (MediaPipe's own rule), the
model's input is that box warped to 256x256 RGB in [0, 1], and its face-presence score (a logit) says when
the face is gone (below 0, MediaPipe's min_tracking_confidence of 0.5). The model comes from the same
`face_landmarker.task` bundle (a zip) and runs in LiteRT (`ai-edge-litert`) on one thread.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np

from facetrack.errors import FacetrackError

MODEL = "face_landmarks_detector.tflite"  # inside face_landmarker.task
SIZE = 256  # the model's input side
BOX_SCALE = 1.5  # the box's side over the landmarks' bounding square (MediaPipe's RectTransformation)
EYE_LINE = (33, 263)  # outer eye corners: the box turns with the line between them (MediaPipe's rotation)
MIN_PRESENCE = 0.0  # logit: sigmoid 0.5, MediaPipe's min_tracking_confidence


def box_transform(points: np.ndarray) -> np.ndarray:
    """(2, 3) affine map from the model's input (pixel edges, 0..SIZE) to the image (pixel edges; landmark
    coordinates put pixel centres at k + 0.5): the square about `points` (N, 2) that the model looks at."""
    lo, hi = points.min(0), points.max(0)
    d = points[EYE_LINE[1]] - points[EYE_LINE[0]]
    angle = np.arctan2(d[1], d[0])
    k = BOX_SCALE * float(np.max(hi - lo)) / SIZE
    c, s = np.cos(angle) * k, np.sin(angle) * k
    A = np.array([[c, -s, 0.0], [s, c, 0.0]])
    A[:, 2] = (lo + hi) / 2 - A[:, :2] @ np.full(2, SIZE / 2)
    return A


class LandmarkFollower:
    """478 landmarks (pixels) and their depth (pixel units, smaller is nearer) from the box about the last
    frame's landmarks; None when the model says the box holds no face. Not thread-safe: one caller at a time."""

    def __init__(self, bundle: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with zipfile.ZipFile(bundle) as z:
                model = z.read(MODEL)
            self._net = Interpreter(model_content=model, num_threads=1)
            self._net.allocate_tensors()
        except (OSError, zipfile.BadZipFile, KeyError, ValueError, RuntimeError) as e:
            raise FacetrackError(f"cannot load MediaPipe's landmark model from {bundle}: {e}") from None
        self._input = self._net.get_input_details()[0]["index"]
        points, presence = self._net.get_output_details()[:2]
        self._points, self._presence = points["index"], presence["index"]
        self._tensor = np.empty((1, SIZE, SIZE, 3), np.float32)

    def __call__(self, rgb: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(478, 2) points and (478,) depth in `rgb` (uint8, H x W x 3) for the face whose last landmarks were
        `previous` (478, 2), or None when it is gone."""
        A = box_transform(previous)
        M = A.copy()  # the same map between pixel indices, as OpenCV samples
        M[:, 2] += A[:, :2] @ np.full(2, 0.5) - 0.5
        patch = cv2.warpAffine(rgb, M, (SIZE, SIZE), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
        np.multiply(patch, np.float32(1 / 255), out=self._tensor[0])
        self._net.set_tensor(self._input, self._tensor)
        self._net.invoke()
        if float(self._net.get_tensor(self._presence).ravel()[0]) < MIN_PRESENCE:
            return None
        out = self._net.get_tensor(self._points).reshape(-1, 3).astype(np.float64)
        scale = float(np.hypot(A[0, 0], A[1, 0]))
        return out[:, :2] @ A[:, :2].T + A[:, 2], out[:, 2] * scale
