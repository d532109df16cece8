"""Which face to follow when a frame holds several.

Policy: at the start, after the face was lost and after a scene cut, take the `rank`-th largest face (1 =
the largest; `--face N`). In between, follow the face nearest the one tracked in the previous frame, so a
larger face walking past does not steal the track. Once a second (`RECHECK_S`), when following the
largest (rank 1), switch if another face has become 1.5 times as large: a track stuck on a small
background head goes back to the person in front; that check waits for a frame the landmarker saw whole
(facetrack.vision.zoom follows a small face in a crop). The count of other faces is kept per frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from facetrack.vision.crop import face_size
from facetrack.vision.dense import DenseLandmarks

RECHECK_S = 1.0
FOLLOW_RADIUS = 0.5  # of the face size: the nearest face further than this from the last one is not the same face
SWITCH_RATIO = 1.5
CUT_LEVEL = 40.0  # mean absolute difference (0-255) of two frames' 32x18 grey thumbnails: a new shot


class FacePicker:
    def __init__(self, rank: int = 1) -> None:
        if rank < 1:
            raise ValueError("rank counts from 1 (the largest face)")
        self.rank = rank
        self.reset()

    def reset(self) -> None:
        self.center: np.ndarray | None = None
        self.size = 0.0
        self.checked_at: float | None = None
        self.thumb: np.ndarray | None = None
        self.switches = 0
        self.cuts = 0

    def scene_cut(self, rgb: np.ndarray) -> bool:
        """Whether this frame starts a new shot (compared with the previous frame)."""
        step = max(1, min(rgb.shape[:2]) // 72)  # every step-th pixel first: area-averaging a full frame costs
        small = cv2.resize(cv2.cvtColor(np.ascontiguousarray(rgb[::step, ::step]), cv2.COLOR_RGB2GRAY), (32, 18),
                           interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32)
        cut = self.thumb is not None and float(np.abs(small - self.thumb).mean()) > CUT_LEVEL
        self.thumb = small
        self.cuts += cut
        return cut

    def __call__(self, faces: list[DenseLandmarks], timestamp: float | None, cut: bool = False,
                 complete: bool = True) -> tuple[DenseLandmarks, bool]:
        """The face to track among `faces` (largest first, image pixels; `complete`: found in the whole frame,
        not only in a zoomed crop) and whether it is a different face from the previous frame's (the caller
        then forgets that face's filters)."""
        sizes = [float(face_size(f.points)) for f in faces]
        centers = [f.points.mean(0) for f in faces]
        by_rank = faces[min(self.rank, len(faces)) - 1]
        pick, new = by_rank, True
        if self.center is not None and not cut:
            d = [np.linalg.norm(c - self.center) for c in centers]
            k = int(np.argmin(d))
            if d[k] < FOLLOW_RADIUS * max(self.size, 1.0):
                pick, new = faces[k], False
        due = timestamp is None or self.checked_at is None or timestamp - self.checked_at >= RECHECK_S
        if not new and due and complete:
            self.checked_at = timestamp
            if self.rank == 1 and sizes[0] > SWITCH_RATIO * face_size(pick.points):
                pick, new = faces[0], True
                self.switches += 1
        k = next(i for i, f in enumerate(faces) if f is pick)
        self.center, self.size = centers[k], sizes[k]
        if new:
            self.checked_at = timestamp
        pick.other_faces = len(faces) - 1
        return pick, new
