"""Frame sources: a camera index, a video file or a folder of images, as (timestamp s, index, RGB) frames."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from facetrack.errors import FacetrackError

cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our own one-line errors say it instead

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def open_source(source: str) -> Iterator[tuple[float, int, np.ndarray]]:
    """Frames of `source`; a one-line error when it cannot be opened or yields nothing."""
    path = Path(source)
    if source.isdigit():
        return _capture(cv2.VideoCapture(int(source)), f"camera {source}", live=True)
    if path.is_dir():
        return _folder(path)
    if not path.is_file():
        raise FacetrackError(f"source not found: {source}")
    return _capture(cv2.VideoCapture(str(path)), str(path), live=False)


def _capture(cap: cv2.VideoCapture, name: str, live: bool) -> Iterator[tuple[float, int, np.ndarray]]:
    if not cap.isOpened():
        raise FacetrackError(f"cannot open {name}" + (" (no camera?)" if live else " (corrupt or unsupported video)"))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    ok, frame = cap.read()
    if not ok:
        cap.release()
        raise FacetrackError(f"no frames could be read from {name}")

    def gen():
        nonlocal ok, frame
        i, t0 = 0, time.monotonic()
        try:
            while ok:
                stamp = time.monotonic() - t0 if live else i / fps
                yield stamp, i, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                ok, frame = cap.read()
                i += 1
        finally:
            cap.release()

    return gen()


def _folder(path: Path) -> Iterator[tuple[float, int, np.ndarray]]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise FacetrackError(f"no images in folder: {path}")

    def gen():
        for i, f in enumerate(files):
            img = cv2.imread(str(f))
            if img is not None:  # unreadable files are skipped
                yield float(i), i, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    return gen()
