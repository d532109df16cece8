"""Refining the MediaPipe-to-ICT correspondence on real frames (`facetrack model correspond --refine ...`).

Frames of real videos are tracked with the current correspondence; for each inner-lip landmark, the residual
of the fit is carried back into the model frame (lateral offset at the point's depth, rotated back), its
median over frames moves the surface point, and this repeats. The inner lips are where the closed neutral
ICT mouth makes the first guess ambiguous.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.io.sources import open_source
from facetrack.model.correspondence import DATA_FILE, LOWER_INNER_LIP, UPPER_INNER_LIP, Correspondence, refine
from facetrack.model.facemodel import FaceModel
from facetrack.net.weights import Weights
from facetrack.track.fitter import FitConfig, model_frame_offsets
from facetrack.track.tracker import Tracker

REFINED = np.concatenate([UPPER_INNER_LIP, LOWER_INNER_LIP])
# Without per-person resting offsets: they would absorb exactly the residuals this refinement measures.
MEASURE = FitConfig(neutral_bias=False)


def median_offsets(tracker: Tracker, videos: list[Path], every: int = 3, max_frames: int = 240) -> np.ndarray:
    """(468, 3) median model-frame offsets (cm) from the fitted landmark points to the detected ones."""
    f, offs = tracker.fitter, []
    for video in videos:
        tracker.reset()
        for frame in open_source(str(video)):
            if frame.index > max_frames:
                break
            r = tracker(frame.rgb, timestamp=frame.timestamp)
            if r is None or frame.index % every or f.state.previous is None:
                continue
            c, uv, R = f.fitted_points(r.recon.x)
            offs.append(model_frame_offsets(R, c, uv, r.face.box.to_crop(r.dense.points[: len(c)]), f.camera.focal))
    if not offs:
        raise FacetrackError("no frames with a face in the refinement videos")
    return np.median(np.stack(offs), axis=0)


def refine_on_videos(weights: Weights, face: FaceModel, landmarker: Path, videos: list[Path], rounds: int = 2,
                     out: Path | None = None) -> Correspondence:
    corr = Correspondence.load(out or DATA_FILE)
    for _ in range(rounds):
        tracker = Tracker(weights, landmarker=landmarker, smooth=False, correspondence=corr, fit_config=MEASURE)
        corr = refine(face, corr, median_offsets(tracker, videos), REFINED)
        corr.save(out or DATA_FILE)
    return corr
