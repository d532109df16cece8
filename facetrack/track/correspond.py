"""Refining the MediaPipe-to-ICT correspondence on real frames (`facetrack model correspond --refine ...`).

Frames of real videos are tracked with the current correspondence; for each inner-lip landmark, the residual
of the fit is carried back into the model frame (lateral offset at the point's depth, rotated back), its
median over frames moves the surface point, and this repeats. The inner lips are where the closed neutral
ICT mouth makes the first guess ambiguous.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facetrack.io.sources import open_source
from facetrack.model.correspondence import DATA_FILE, LOWER_INNER_LIP, UPPER_INNER_LIP, Correspondence, refine
from facetrack.model.facemodel import FaceModel
from facetrack.net.weights import Weights
from facetrack.track.fitter import euler_matrix
from facetrack.track.tracker import Tracker

REFINED = np.concatenate([UPPER_INNER_LIP, LOWER_INNER_LIP])


def median_offsets(tracker: Tracker, videos: list[Path], every: int = 3, max_frames: int = 240) -> np.ndarray:
    """(468, 3) median model-frame offsets (cm) from the fitted landmark points to the detected ones."""
    f, sl, offs = tracker.fitter, tracker.slices, []
    for video in videos:
        tracker.reset()
        for frame in open_source(str(video)):
            if frame.index > max_frames:
                break
            r = tracker(frame.rgb, timestamp=frame.timestamp)
            if r is None or frame.index % every or f.state.previous is None:
                continue
            obs = r.face.box.to_crop(r.dense.points[: len(f.weights)])
            st, x = f.state.previous, r.recon.x.astype(np.float64)
            m = f._static(x[sl["alpha_id"]], x[sl["delta_g"]]) + np.einsum("k,kic->ic", st["exp"], f.exp_rows)
            R = euler_matrix(st["rot"])
            c = m @ R.T + st["trans"]
            uv, _ = f._project(c)
            d = -c[:, 2:3] / f.camera.focal
            res = obs - uv
            offs.append(np.concatenate([res[:, :1] * d, -res[:, 1:] * d, np.zeros_like(d)], 1) @ R)
    if not offs:
        raise ValueError("no frames with a face in the refinement videos")
    return np.median(np.stack(offs), axis=0)


def refine_on_videos(weights: Weights, face: FaceModel, landmarker: Path, videos: list[Path], rounds: int = 2,
                     out: Path | None = None) -> Correspondence:
    corr = Correspondence.load(out or DATA_FILE)
    for _ in range(rounds):
        tracker = Tracker(weights, landmarker=landmarker, smooth=False, correspondence=corr)
        corr = refine(face, corr, median_offsets(tracker, videos), REFINED)
        corr.save(out or DATA_FILE)
    return corr
