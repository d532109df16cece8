"""`eval video --degrade`: the worse pictures, and the reference and landmarks kept in the clean frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrack.errors import FacetrackError
from facetrack.evaluation.degrade import Degradation
from facetrack.io.sources import open_source
from facetrack.vision.crop import face_size


@pytest.fixture(scope="module")
def frame(shared_dir: Path) -> np.ndarray:
    return next(iter(open_source(str(shared_dir / "videos" / "liveportrait_d0.mp4")))).rgb


def test_each_degradation_makes_the_picture_worse(frame: np.ndarray) -> None:
    h, w = frame.shape[:2]
    room = Degradation("dim")
    dim = room(frame)
    assert dim.shape == frame.shape and dim.dtype == np.uint8
    assert dim.mean() < 0.5 * frame.mean()  # darker ...
    assert not np.array_equal(room(frame), dim)  # ... with fresh noise in every frame
    assert np.array_equal(Degradation("dim")(frame), dim)  # but the same clip gives the same frames
    small = Degradation("small")
    assert small(frame).shape[:2] == (round(h * small.scale), round(w * small.scale)) and small.scale < 0.5

    def detail(img: np.ndarray) -> float:  # horizontal gradient energy
        return float(np.abs(np.diff(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32), axis=1)).mean())

    blur = Degradation("blur")(frame)
    assert blur.shape == frame.shape and detail(blur) < 0.6 * detail(frame)
    assert abs(float(blur.mean()) - float(frame.mean())) < 3  # colours kept (RGB in, RGB out)
    with pytest.raises(FacetrackError, match="unknown degradation"):
        Degradation("fog")


def test_degraded_tracking_reports_in_clean_pixels(weights: Path, model_file: Path, shared_dir: Path,
                                                   landmarker: Path) -> None:
    """A shrunk frame's landmarks come back in the clean frame's pixels, and the reference reads the clean
    frame: both land where the clean run's do."""
    from facetrack.evaluation.video import track_video
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights
    from facetrack.track.tracker import Tracker

    tracker = Tracker(load_weights(weights, FaceModel.load(model_file)), landmarker=landmarker,
                      mediapipe_scores=True)
    video = shared_dir / "videos" / "liveportrait_d0.mp4"
    clean = track_video(tracker, video, max_frames=15)
    small = track_video(tracker, video, max_frames=15, degrade="small")
    size = np.median(face_size(clean["dlib_raw"]))
    for key, bound in (("ours", 0.04), ("dlib_raw", 0.03)):
        gap = np.linalg.norm(small[key] - clean[key], axis=-1).mean(-1) / size
        assert np.isfinite(gap).all() and np.median(gap) < bound, key
    assert np.isfinite(small["expressions"]).all()
