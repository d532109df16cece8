"""Photos through the pipeline, one by one: what every photo-based evaluation loops over."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from facetrack.tracker import FrameResult, Tracker


def reconstructions(tracker: Tracker, files: Iterable[Path], missing: Counter
                    ) -> Iterator[tuple[Path, np.ndarray, FrameResult]]:
    """(path, RGB image, result) for each photo with a face; unreadable photos and photos without a face
    are counted in `missing`. Photos are independent: no tracking between them, and they are padded
    (tight crops like UTKFace cut chins and foreheads)."""
    for path in files:
        img = cv2.imread(str(path))
        if img is None:
            missing["unreadable image"] += 1
            continue
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        tracker.reset()
        r = tracker(rgb, pad=0.25)
        if r is None:
            missing["no face found"] += 1
            continue
        yield path, rgb, r
