"""`facetrack eval video FILE...`: tracking success and landmark jitter.

Each video runs through the tracker frame by frame, as the app runs it (the previous frame's
reconstruction gives the face box; detection only when the face is lost). Figures per video:
- success rate: frames with a reconstruction / frames;
- jitter: mean frame-to-frame motion of the 68 projected model landmarks on still segments, divided by the
  face size (sqrt(w * h) of the landmark box), next to the same figure for the raw dlib landmarks
  (one plain predictor pass in the same box) and for the mirror-averaged dlib landmarks the tracker is fed.
  Still segments: frame pairs where a centred moving average of the raw dlib landmarks over
  `SMOOTH_FRAMES` moves less than `still` face sizes per frame, so real head motion is left out and what
  remains is noise.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from facetrack.errors import FacetrackError
from facetrack.evaluation.metrics import face_size, jitter
from facetrack.evaluation.report import skipped, stats
from facetrack.io.sources import open_source
from facetrack.track.tracker import Tracker

SMOOTH_FRAMES = 9
STILL = 0.002  # face sizes per frame (0.46 px at a 230 px face)


def still_pairs(points: np.ndarray, still: float = STILL, window: int = SMOOTH_FRAMES) -> np.ndarray:
    """(T,) bool: pairs[t] is True when the frame pair (t-1, t) lies in a still segment of (T, N, 2) points."""
    T = len(points)
    ok = np.isfinite(points).all(axis=(1, 2))
    smooth = np.full_like(points, np.nan)
    half = window // 2
    for t in range(half, T - half):
        win = points[t - half : t + half + 1]
        if ok[t - half : t + half + 1].all():
            smooth[t] = win.mean(0)
    motion = np.full(T, np.inf)
    motion[1:] = np.linalg.norm(np.diff(smooth, axis=0), axis=-1).mean(-1) / face_size(points[1:])
    return np.nan_to_num(motion, nan=np.inf) < still


def track_video(tracker: Tracker, path: Path, max_frames: int | None = None) -> dict[str, np.ndarray]:
    """Per frame: model landmarks, raw and mirror-averaged dlib landmarks, (T, 68, 2), NaN where lost."""
    tracker.reset()
    ours, raw, fed = [], [], []
    nan = np.full((68, 2), np.nan)
    for frame in open_source(str(path)):
        rgb = frame.rgb
        r = tracker(rgb)
        if r is None:
            ours.append(nan)
            raw.append(nan)
            fed.append(nan)
        else:
            ours.append(r.landmarks_image)
            fed.append(r.face.image_landmarks)
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            raw.append(tracker.finder.landmarks.raw(gray, r.face.source_box))
        if max_frames and len(ours) >= max_frames:
            break
    return {k: np.asarray(v, np.float64) for k, v in (("ours", ours), ("dlib_raw", raw), ("dlib_fed", fed))}


def eval_video(tracker: Tracker, files: list[Path], max_frames: int | None = None, still: float = STILL) -> dict:
    per_video, missing = {}, Counter()
    total = found = 0
    pooled = {"ours": [], "dlib_raw": [], "dlib_fed": []}
    still_n = 0
    for path in files:
        try:
            tr = track_video(tracker, path, max_frames)
        except FacetrackError:
            missing["unreadable video"] += 1
            continue
        T = len(tr["ours"])
        ok = np.isfinite(tr["ours"]).all(axis=(1, 2))
        total += T
        found += int(ok.sum())
        if not ok.any():
            missing["video without faces"] += 1
            per_video[path.name] = {"frames": T, "success_rate": 0.0}
            continue
        pairs = still_pairs(tr["dlib_raw"], still)
        scale = face_size(tr["dlib_raw"])
        fig = {k: jitter(tr[k], pairs, scale) for k in pooled}
        n_pairs = int(pairs[1:].sum())
        if n_pairs:
            for k in pooled:
                pooled[k].append((fig[k], n_pairs))
        still_n += n_pairs
        per_video[path.name] = {"frames": T, "success_rate": float(ok.mean()), "still_pairs": n_pairs,
                                "jitter": fig, "jitter_ratio_ours_to_raw_dlib": fig["ours"] / fig["dlib_raw"]
                                if n_pairs else None,
                                "face_size_px": stats(scale).get("median")}

    def pooled_mean(k: str) -> float | None:
        if not pooled[k]:
            return None
        v, w = np.asarray(pooled[k]).T
        return float((v * w).sum() / w.sum())

    jit = {k: pooled_mean(k) for k in pooled}
    return {"videos": len(files), "frames": total, "success_rate": found / max(total, 1),
            "still_pairs": still_n, "still_threshold": still,
            "jitter": jit,
            "jitter_ratio_ours_to_raw_dlib": jit["ours"] / jit["dlib_raw"] if jit["ours"] and jit["dlib_raw"] else None,
            "per_video": per_video, "skipped": skipped(missing)}
