"""Frame sources: a camera, a video file, a folder of images, or a recording replayed.

Every source yields `Frame`s and says its frame rate and whether it is live (a camera: frames come when
they come) or not (a file: frames can be paced at the source's own rate). A recording's frames carry the
recorded parameter vector instead of an image, so playback feeds the same pipeline as live tracking.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facetrack import paths
from facetrack.errors import FacetrackError
from facetrack.vision.crop import CropBox

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our own one-line errors say it instead
paths.quiet_video_decoder()

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
RECORDING_EXT = ".ftrec"


@dataclass
class Frame:
    """One frame: an RGB image, or (replayed) a recorded parameter vector with its crop box."""

    timestamp: float  # seconds since the source started
    index: int
    rgb: np.ndarray | None = None  # (H, W, 3) uint8
    x: np.ndarray | None = None  # recorded parameter vector
    box: CropBox | None = None  # recorded crop box
    size: tuple[int, int] | None = None  # (width, height) of the frame
    photometric: dict[str, float] = field(default_factory=dict)  # recorded photometric errors
    vfov_deg: float | None = None  # the recorded source camera's vertical field of view (facetrack.track.head)

    @property
    def frame_size(self) -> tuple[int, int]:
        if self.rgb is not None:
            return self.rgb.shape[1], self.rgb.shape[0]
        return self.size or (640, 480)


class Source:
    """Iterable of frames; `fps` (0 when unknown) and `live` describe the stream; `problems` says, once the
    frames have been read, what the stream lost (undecodable frames, skipped files, damaged records)."""

    name: str = ""
    fps: float = 0.0
    live: bool = False
    problems: str = ""

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError


class CaptureSource(Source):
    """A camera index or a video file through OpenCV."""

    def __init__(self, target: int | str, name: str, live: bool) -> None:
        self.name, self.live = name, live
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise FacetrackError(f"cannot open {name}" + (" (no camera?)" if live else
                                                           " (corrupt or unsupported video)"))
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.expected = 0 if live else max(int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0), 0)
        ok, self._first = self.cap.read()
        if not ok:
            self.cap.release()
            raise FacetrackError(f"no frames could be read from {name}")

    def __iter__(self) -> Iterator[Frame]:
        frame, i, t0 = self._first, 0, time.monotonic()
        fps = self.fps or 30.0
        try:
            while frame is not None:
                stamp = time.monotonic() - t0 if self.live else i / fps
                yield Frame(stamp, i, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                ok, frame = self.cap.read()
                frame = frame if ok else None
                i += 1
            self.problems = self._lost(i)
        finally:
            self.cap.release()

    def _lost(self, read: int) -> str:
        """A file that stops decoding before the frame count its container gives (one or two frames of slack:
        containers round) is damaged from there; a camera that stops delivering has gone away."""
        if self.live:
            return f"the camera stopped delivering frames after {read}"
        if self.expected and read < self.expected - 2:
            return (f"only {read} of {self.expected} frames could be decoded: the video is damaged from frame "
                    f"{read} on ({self.expected - read} frames lost)")
        return ""


class FolderSource(Source):
    """Images of a folder in name order, one per 'frame'. Files that are not images or do not decode are
    skipped with their reason (`skipped`; `problems` counts them)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        self.files = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTS]
        self.skipped: list[tuple[Path, str]] = [(p, "not an image file") for p in entries
                                                if p.is_file() and p.suffix.lower() not in IMAGE_EXTS]
        if not self.files:
            raise FacetrackError(f"no images in folder: {path}")
        self.problems = skipped_summary(self.skipped)

    def __iter__(self) -> Iterator[Frame]:
        for i, f in enumerate(self.files):
            img = cv2.imread(str(f))
            if img is None:
                self.skipped.append((f, "empty file" if f.stat().st_size == 0 else "not a readable image"))
            else:
                yield Frame(float(i), i, cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
            self.problems = skipped_summary(self.skipped)


def skipped_summary(skipped: list[tuple[Path, str]]) -> str:
    """"skipped 3 files (2 not a readable image, 1 not an image file)" or ""."""
    if not skipped:
        return ""
    from collections import Counter

    reasons = Counter(r for _, r in skipped)
    return f"skipped {len(skipped)} file{'s' * (len(skipped) > 1)} (" + ", ".join(
        f"{n} {r}" for r, n in reasons.most_common()) + ")"


class RecordingSource(Source):
    """A `.ftrec` recording replayed: each frame carries the recorded parameters and crop box."""

    def __init__(self, path: Path, layout) -> None:
        from facetrack.io.recording import read_recording

        self.name = str(path)
        self.rec = read_recording(path)
        self.problems = self.rec.problems()  # shown by the window: damaged records skipped
        if len(self.rec) == 0:
            raise FacetrackError(f"the recording {path} holds no frames")
        self.xs = self.rec.params(layout)
        stamps = self.rec.timestamp - self.rec.timestamp[0]
        self.stamps = stamps
        self.vfov_deg = self.rec.header.get("source_vfov_deg")
        self.fps = float(self.rec.header.get("fps") or 0.0) or (
            (len(stamps) - 1) / stamps[-1] if len(stamps) > 1 and stamps[-1] > 0 else 30.0)

    def __iter__(self) -> Iterator[Frame]:
        boxes = self.rec.values.get("crop_box")
        sizes = self.rec.values.get("frame_size")
        for k in range(len(self.rec)):
            box = CropBox(*map(float, boxes[k])) if boxes is not None else None
            size = tuple(int(v) for v in sizes[k]) if sizes is not None else None
            photo = {lv: float(self.rec.values[f"photo_{lv}"][k, 0]) for lv in ("base", "final")
                     if f"photo_{lv}" in self.rec.values and np.isfinite(self.rec.values[f"photo_{lv}"][k, 0])}
            yield Frame(float(self.stamps[k]), int(self.rec.frame_index[k]), None, self.xs[k], box, size, photo,
                        self.vfov_deg)


def paced(source: Source) -> Iterator[Frame]:
    """The source's frames at its own rate: a file or recording waits for each frame's timestamp (as a camera
    would deliver it); a live source passes through as it comes."""
    start = time.monotonic()
    for frame in source:
        if not source.live:
            delay = start + frame.timestamp - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield frame


def open_source(source: str, layout=None) -> Source:
    """The source named by a camera index, a video or recording file, or an image folder; a one-line error
    when it cannot be opened or yields nothing. `layout` (the model's) is needed to replay a recording."""
    path = Path(source)
    if source.isdigit():
        return CaptureSource(int(source), f"camera {source}", live=True)
    if path.is_dir():
        return FolderSource(path)
    if not path.is_file():
        raise FacetrackError(f"source not found: {source}")
    if path.suffix == RECORDING_EXT:
        if layout is None:
            raise FacetrackError(f"{source} is a recording: replay it with `facetrack play`")
        return RecordingSource(path, layout)
    return CaptureSource(str(path), str(path), live=False)
