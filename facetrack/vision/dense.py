"""MediaPipe Face Landmarker: 478 landmarks with relative depth, 52 blendshape scores and a head pose matrix.

Tasks API, fully offline from the `face_landmarker.task` bundle (Apache-2.0, from MediaPipe's model page) given
by --landmarker or $FACETRACK_LANDMARKER; in streams its landmark model follows each face from frame to frame
(facetrack.vision.follow). Up to MAX_FACES faces per frame, largest first; which one is tracked is decided by
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

# Whole frames go to MediaPipe in IMAGE mode: its detector, then the landmark model, for up to MAX_FACES faces.
# Its VIDEO mode with num_faces > 1 gives the same landmarks (it too runs the detector on every frame); with
# num_faces=1 it follows the last frame's landmarks instead but smooths them, and read the eight shared clips
# worse (r(jawOpen) 0.82, r(eyeBlink) 0.66 / 0.71 against 0.96 and 0.87 / 0.87; MediaPipe's own blendshape
# scores fell alike, 0.83 -> 0.74). Stream frames are followed without that smoothing (facetrack.vision.follow).
MAX_FACES = 3
LOOK_EVERY_S = 1.0  # a followed or zoomed stream still has the whole frame looked at this often: faces coming in
MAX_GAP_S = 0.25  # stream frames further apart than this start from the whole frame: the face may be anywhere
SAME_FACE = 0.3  # two faces whose landmark boxes overlap more than this (intersection over union) are one
FRAME_S = 1 / 30  # the time between stream frames given without timestamps


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


def _box(d: DenseLandmarks) -> np.ndarray:
    return np.concatenate([d.points.min(0), d.points.max(0)])


def overlap(a: DenseLandmarks, b: DenseLandmarks) -> float:
    """Intersection over union of two faces' landmark boxes."""
    ba, bb = _box(a), _box(b)
    inter = np.prod(np.clip(np.minimum(ba[2:], bb[2:]) - np.maximum(ba[:2], bb[:2]), 0, None))
    union = np.prod(ba[2:] - ba[:2]) + np.prod(bb[2:] - bb[:2]) - inter
    return float(inter / max(union, 1e-9))


def merge(*lists: list[DenseLandmarks]) -> list[DenseLandmarks]:
    """One entry per face (the earlier list's wins where two overlap more than SAME_FACE), largest first."""
    out: list[DenseLandmarks] = []
    for d in (d for faces in lists for d in faces):
        if all(overlap(d, o) <= SAME_FACE for o in out):
            out.append(d)
    return largest_first(out)


class MediaPipeLandmarker:
    """Faces in photos and stream frames. A photo, a stream's first frame, a frame after a gap or a scene cut,
    and every LOOK_EVERY_S of a stream go whole to MediaPipe (detector + landmark model); the other stream frames
    have each face followed from its last landmarks (`LandmarkFollower`, about half the time a frame), and go
    whole only when every face was lost. `follow=False`: every frame goes whole.

    `blendshapes`: MediaPipe's 52 scores too. Tracking does not use them (the fit reads expressions from the
    landmarks) and they cost about 0.6 ms a frame here (512x512 clips: 15.5 -> 14.9 ms), so only `eval video`,
    whose peer row they are, asks for them: then every frame also goes whole, and each followed face carries
    the scores and pose matrix of the face MediaPipe found there."""

    name = "mediapipe"

    def __init__(self, model: Path, blendshapes: bool = False, follow: bool = True) -> None:
        if not Path(model).is_file():
            raise FacetrackError(f"MediaPipe landmarker model not found: {model} (download face_landmarker.task "
                                 "from MediaPipe's Face Landmarker page and pass --landmarker or set "
                                 "FACETRACK_LANDMARKER)")
        from mediapipe.tasks.python import BaseOptions, vision

        from facetrack.vision.follow import LandmarkFollower

        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model)), running_mode=vision.RunningMode.IMAGE,
            num_faces=MAX_FACES, output_face_blendshapes=blendshapes, output_facial_transformation_matrixes=True)
        try:
            with _native_stderr_silenced():
                self._landmarker = vision.FaceLandmarker.create_from_options(opts)
        except (RuntimeError, ValueError) as e:
            raise FacetrackError(f"cannot load the MediaPipe landmarker {model}: {e}") from None
        self.follower = LandmarkFollower(Path(model)) if follow else None
        self.blendshapes = blendshapes
        self._calls = 0
        self.forget()
        _close_before_shutdown(self.close)

    def forget(self) -> None:
        """The next stream frame goes whole (a new source, a scene cut)."""
        self._tracks: list[np.ndarray] = []
        self._shape: tuple[int, ...] = ()
        self._seen_at = self._looked_at = float("-inf")

    def __call__(self, rgb: np.ndarray, timestamp_s: float | None = None, still: bool = False
                 ) -> list[DenseLandmarks]:
        """The faces in a uint8 RGB frame, largest first ([] for none). Stream frames come in order, with
        timestamps in seconds (None: FRAME_S after the last); `still` photos are looked at whole and alone."""
        if still:
            return self._whole(rgb)
        if timestamp_s is not None:
            now = float(timestamp_s)
        else:  # the stream's own clock, from 0 after forget()
            now = self._seen_at + FRAME_S if np.isfinite(self._seen_at) else 0.0
        if not 0 <= now - self._seen_at <= MAX_GAP_S or rgb.shape != self._shape:
            self._tracks = []
        followed = self._follow(rgb)
        if self.blendshapes or not followed or now - self._looked_at >= LOOK_EVERY_S:  # without a follower, always
            whole = self._whole(rgb)
            for f in followed:  # MediaPipe's own scores and pose for the faces it found too
                match = next((w for w in whole if overlap(f, w) > SAME_FACE), None)
                if match is not None:
                    f.blendshapes, f.matrix = match.blendshapes, match.matrix
            self._looked_at = now
        else:
            whole = []
        faces = merge(followed, whole)[:MAX_FACES]
        for f in faces:
            f.other_faces = len(faces) - 1
        self._tracks, self._shape, self._seen_at = [f.points for f in faces], rgb.shape, now
        return faces

    def _follow(self, rgb: np.ndarray) -> list[DenseLandmarks]:
        """The last frame's faces followed into this one; one entry per face (two tracks may meet on one)."""
        if self.follower is None:
            return []
        found = (self.follower(rgb, previous) for previous in self._tracks)
        return merge([DenseLandmarks(*f) for f in found if f is not None])

    def _whole(self, rgb: np.ndarray) -> list[DenseLandmarks]:
        """MediaPipe's detector and landmark model on the whole frame."""
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        h, w = rgb.shape[:2]
        quiet = _native_stderr_silenced() if self._calls < 2 else contextlib.nullcontext()
        self._calls += 1
        with quiet:
            res = self._landmarker.detect(image)
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
        lm = getattr(self, "_landmarker", None)
        if lm is not None:
            lm.close()
            self._landmarker = None
