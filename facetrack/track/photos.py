"""Photos through the tracker one by one: what `facetrack reconstruct` and every photo-based evaluation loop over."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facetrack.render.reconstruction import NOTHING, Needs
from facetrack.track.tracker import FrameResult, Tracker

PHOTO_PAD = 0.25  # tight crops like UTKFace cut chins and foreheads: pad before detection


@dataclass
class PhotoOutcome:
    """One photo: its image and result, or why there is none (`problem`)."""

    path: Path
    rgb: np.ndarray | None = None
    result: FrameResult | None = None
    problem: str | None = None  # "unreadable image", "no face found"


def photo_outcomes(tracker: Tracker, files: Iterable[Path], needs: Needs = NOTHING) -> Iterator[PhotoOutcome]:
    """Every photo's outcome; photos are independent (no tracking between them) and padded."""
    for path in files:
        img = cv2.imread(str(path))
        if img is None:
            yield PhotoOutcome(path, problem="unreadable image")
            continue
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        tracker.reset()
        r = tracker(rgb, pad=PHOTO_PAD, needs=needs)
        yield PhotoOutcome(path, rgb, r, None if r is not None else "no face found")


def reconstructions(tracker: Tracker, files: Iterable[Path], missing: Counter, needs: Needs = NOTHING
                    ) -> Iterator[tuple[Path, np.ndarray, FrameResult]]:
    """(path, RGB image, result) for each photo with a face; the others are counted in `missing` by reason."""
    for o in photo_outcomes(tracker, files, needs):
        if o.problem:
            missing[o.problem] += 1
            continue
        yield o.path, o.rgb, o.result
