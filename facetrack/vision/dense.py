"""MediaPipe Face Landmarker: 478 landmarks with relative depth, 52 blendshape scores and a head pose matrix.

Tasks API in VIDEO running mode (it tracks between frames by itself), fully offline from the
`face_landmarker.task` bundle (Apache-2.0, from MediaPipe's model page) given by --landmarker or
$FACETRACK_LANDMARKER. Up to MAX_FACES faces per frame, largest first; which one is tracked is decided by
facetrack.track.choice.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facetrack.errors import FacetrackError

# More than one face also makes MediaPipe re-detect the face every frame: with fewer faces in view than
# num_faces, its VIDEO graph runs the detector each frame instead of only following the last frame's
# landmarks. That costs about 3 ms a frame (512x512 clips: 13.4 -> 16.8 ms), but its own tracking reads
# worse: with num_faces=1 the eight shared clips gave r(jawOpen) 0.82 and r(eyeBlink) 0.66 / 0.71 against
# 0.96 and 0.87 / 0.87 (MediaPipe's own blendshape scores fell alike, 0.83 -> 0.74). Detection on every
# frame (IMAGE mode) reads as this does.
MAX_FACES = 3


@contextlib.contextmanager
def _native_stderr_silenced():
    """MediaPipe's C++ graph logs a dozen INFO/WARNING lines to file descriptor 2 while it starts and on its
    first frames; they say nothing to a user. Silence fd 2 around those calls (Python errors still raise)."""
    import os

    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _close_before_shutdown(close) -> None:
    """MediaPipe closes its tasks through a concurrent.futures executor, which Python shuts down before plain
    atexit handlers run (its own __del__ then prints a traceback at exit). threading's exit hooks run before
    that executor's, so close there; plain atexit where that hook is missing."""
    register = getattr(threading, "_register_atexit", None)
    try:
        (register or atexit.register)(close)
    except RuntimeError:  # already shutting down
        atexit.register(close)


@dataclass
class DenseLandmarks:
    """One face: (478, 2) image pixels (pixel centres at k + 0.5), (478,) depth in the same pixel units (smaller is
    nearer the camera, relative to the face), MediaPipe's blendshape scores (empty unless the landmarker was
    asked for them) and 4x4 pose matrix (cm, y up)."""

    points: np.ndarray
    depth: np.ndarray
    blendshapes: dict[str, float] = field(default_factory=dict)
    matrix: np.ndarray | None = None
    other_faces: int = 0


def largest_first(faces: list[DenseLandmarks]) -> list[DenseLandmarks]:
    """Faces ordered by the area of their landmarks' bounding box, largest first."""
    return sorted(faces, key=lambda d: -np.ptp(d.points[:, 0]) * np.ptp(d.points[:, 1]))


class MediaPipeLandmarker:
    """`blendshapes`: MediaPipe's 52 scores too. Tracking does not use them (the fit reads expressions from the
    landmarks) and they cost about 0.6 ms a frame here (512x512 clips: 15.5 -> 14.9 ms), so only `eval video`,
    whose peer row they are, asks for them."""

    name = "mediapipe"

    def __init__(self, model: Path, blendshapes: bool = False) -> None:
        if not Path(model).is_file():
            raise FacetrackError(f"MediaPipe landmarker model not found: {model} (download face_landmarker.task "
                                 "from MediaPipe's Face Landmarker page and pass --landmarker or set "
                                 "FACETRACK_LANDMARKER)")
        from mediapipe.tasks.python import BaseOptions, vision

        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model)), running_mode=vision.RunningMode.VIDEO,
            num_faces=MAX_FACES, output_face_blendshapes=blendshapes, output_facial_transformation_matrixes=True,
            min_face_detection_confidence=0.5, min_face_presence_confidence=0.5, min_tracking_confidence=0.5)
        photo = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model)), running_mode=vision.RunningMode.IMAGE,
            num_faces=MAX_FACES, output_face_blendshapes=blendshapes, output_facial_transformation_matrixes=True)
        try:
            with _native_stderr_silenced():
                self._landmarker = vision.FaceLandmarker.create_from_options(opts)
                self._photo = vision.FaceLandmarker.create_from_options(photo)
        except (RuntimeError, ValueError) as e:
            raise FacetrackError(f"cannot load the MediaPipe landmarker {model}: {e}") from None
        self.blendshapes = blendshapes
        self._last_ms = -1
        self._calls = 0
        _close_before_shutdown(self.close)

    def __call__(self, rgb: np.ndarray, timestamp_s: float | None = None, still: bool = False
                 ) -> list[DenseLandmarks]:
        """The faces in a uint8 RGB frame, largest first ([] for none). Frames of a stream (VIDEO mode, which
        tracks) need increasing timestamps (they are made to increase); `still` photos are detected alone."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        h, w = rgb.shape[:2]
        quiet = _native_stderr_silenced() if self._calls < 2 else contextlib.nullcontext()
        self._calls += 1
        with quiet:
            if still:
                res = self._photo.detect(image)
            else:
                ms = self._last_ms + 1 if timestamp_s is None else max(int(timestamp_s * 1000), self._last_ms + 1)
                self._last_ms = ms
                res = self._landmarker.detect_for_video(image, ms)
        out = []
        for k, lms in enumerate(res.face_landmarks):
            f = np.array([[p.x, p.y, p.z] for p in lms], np.float64)
            shapes = {c.category_name: float(c.score) for c in res.face_blendshapes[k]} \
                if res.face_blendshapes else {}
            matrix = np.asarray(res.facial_transformation_matrixes[k]) if res.facial_transformation_matrixes \
                else None
            out.append(DenseLandmarks(np.stack([f[:, 0] * w, f[:, 1] * h], axis=1), f[:, 2] * w, shapes, matrix,
                                      len(res.face_landmarks) - 1))
        return largest_first(out)

    def close(self) -> None:
        for name in ("_landmarker", "_photo"):
            lm = getattr(self, name, None)
            if lm is not None:
                lm.close()
                setattr(self, name, None)

