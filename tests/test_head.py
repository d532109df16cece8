"""The head's pose in the source camera (facetrack.track.head): what streams and the window's plots report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facetrack.evaluation.metrics import rotation_error_deg
from facetrack.model.facemodel import FaceModel
from facetrack.render.camera import CROP_SIZE, DEFAULT_FOCAL, Camera, euler_to_matrix
from facetrack.render.reconstruction import Reconstruction
from facetrack.track.head import SOURCE_VFOV_DEG, head_pose, source_focal
from facetrack.vision.crop import CropBox


def _recon(rot: np.ndarray, trans: np.ndarray) -> Reconstruction:
    return Reconstruction(np.zeros(6, np.float32), {"rot": np.asarray(rot, np.float32),
                                                    "trans": np.asarray(trans, np.float32)}, [], np.zeros((68, 2)))


def test_a_photo_keeps_the_crop_camera_and_the_frame_centre_only_moves_the_distance() -> None:
    r = _recon([0.1, -0.3, 0.05], [0.4, -0.2, -115.0])
    box = CropBox(320.0, 240.0, 200.0)
    photo = head_pose(r, box, None)
    assert np.allclose(photo.rotation, r.head_rotation) and np.allclose(photo.translation_cm, [0.4, -0.2, -115.0])
    centred = head_pose(_recon([0.1, -0.3, 0.05], [0.0, 0.0, -115.0]), box, (640, 480))
    scale = source_focal((640, 480)) * box.scale / DEFAULT_FOCAL  # the face keeps its size in the picture
    assert np.allclose(centred.rotation, r.head_rotation, atol=1e-6)
    assert np.allclose(centred.translation_cm, [0.0, 0.0, -115.0 * scale], atol=1e-4)


@pytest.mark.parametrize("cx, cy, side", [(560.0, 120.0, 150.0), (60.0, 400.0, 320.0)])
def test_the_source_pose_puts_the_face_where_the_crop_shows_it(cx: float, cy: float, side: float) -> None:
    """Projected by the source camera, the face's origin lands on the image pixel where the crop's camera puts
    it, and a head the crop sees frontal (facing along its line of sight) faces along that ray in the source."""
    box, size = CropBox(cx, cy, side), (640, 480)
    t = np.array([1.5, -0.8, -110.0])
    pose = head_pose(_recon([0.0, 0.0, 0.0], t), box, size)
    f = source_focal(size)
    P = pose.translation_cm
    seen = np.array([size[0] / 2 + f * P[0] / -P[2], size[1] / 2 - f * P[1] / -P[2]])
    in_crop = np.array([CROP_SIZE / 2 + DEFAULT_FOCAL * t[0] / -t[2], CROP_SIZE / 2 - DEFAULT_FOCAL * t[1] / -t[2]])
    assert np.allclose(seen, box.to_image(in_crop), atol=1e-6)
    forward = pose.rotation @ _recon([0.0, 0.0, 0.0], t).head_frame.T @ [0.0, 0.0, 1.0]  # the model's +z
    # the crop sees the model's +z at this angle to its line of sight, and so does the source camera
    assert forward @ (-P / np.linalg.norm(P)) == pytest.approx(-t[2] / np.linalg.norm(t), abs=1e-9)
    assert forward @ [0.0, 0.0, 1.0] < 0.99  # while it no longer points along the source camera's axis
    assert np.linalg.norm(P) == pytest.approx(np.linalg.norm(t) * f * box.scale / DEFAULT_FOCAL)


def test_a_head_moving_across_a_webcam_frame_without_turning(weights: Path, model_file: Path,
                                                             landmarker: Path) -> None:
    """An ICT face rendered by a 640x480 camera with the default field of view, 60 cm away, facing the same way
    at the frame's centre and 18 cm to either side (17 degrees off the axis), tracked as a stream: in the source
    camera its rotation stays the same and its position follows; the crop's camera reads a turn instead."""
    from facetrack.net.weights import load_weights
    from facetrack.render.images import to_uint8
    from facetrack.render.raster_gl import GLRasterizer
    from facetrack.render.synthetic import SynthConfig, SyntheticFaces
    from facetrack.track.tracker import Tracker

    w = load_weights(weights, FaceModel.load(model_file))
    tracker = Tracker(w, landmarker=landmarker)
    gen = SyntheticFaces(w.face, None, SynthConfig(seed=5, max_active_expressions=0))
    size = (640, 480)
    cam, raster = Camera(*size, focal=source_focal(size, SOURCE_VFOV_DEG)), GLRasterizer(*size, 2)
    p, eyes = gen.params(), gen.eyes()
    p["rot"][0] = torch.tensor([0.05, 0.1, 0.0])
    skin = torch.tensor([0.8, 0.6, 0.5]).expand(1, w.face.n_vertices, 3)
    ramp = np.linspace(0.2, 0.5, size[0], dtype=np.float32)[None, :, None]
    bg = np.broadcast_to(ramp, (size[1], size[0], 3)).copy()
    truth = euler_to_matrix(p["rot"][0].double()).numpy()
    seen = {}
    try:
        for x in (0.0, -18.0, 18.0):
            p["trans"][0] = torch.tensor([x, 0.0, -60.0])
            rgb, _ = gen.render(p, skin, eyes, raster, cam, bg)
            tracker.reset()
            for k in range(6):
                r = tracker(to_uint8(rgb), timestamp=k / 30)
            assert r is not None
            seen[x] = (r.head, r.recon.head_rotation)
    finally:
        raster.release()
    centre = seen[0.0][0].rotation
    for x, (head, crop_rotation) in seen.items():
        # the fit's own error, wherever it is; the same turn across the frame (fit: 1-3 deg) where the crop's
        # camera sees a 17 degree one
        assert rotation_error_deg(head.rotation, truth @ r.recon.head_frame) < 6.0
        assert rotation_error_deg(head.rotation, centre) < 4.0, x
        assert rotation_error_deg(crop_rotation, seen[0.0][1]) > (12.0 if x else -1.0)
        P = head.translation_cm
        assert P[0] / -P[2] == pytest.approx(x / 60.0, abs=0.03) and abs(P[1] / P[2]) < 0.03
        assert P[2] == pytest.approx(-60.0, rel=0.2)


def test_a_recording_gives_back_the_live_head_pose(weights: Path, model_file: Path, landmarker: Path,
                                                    shared_dir: Path, tmp_path: Path) -> None:
    """The head pose a stream sent live comes back from the recording (its crop boxes, frame sizes and the field
    of view in its header): in the exports' poses and in the replay, which play streams and plots."""
    from facetrack.io.recording import read_recording
    from facetrack.io.sources import open_source
    from facetrack.net.weights import load_weights
    from facetrack.track.head import recorded_poses
    from facetrack.track.pipeline import Pipeline, record
    from facetrack.track.tracker import Tracker

    tracker = Tracker(load_weights(weights, FaceModel.load(model_file)), landmarker=landmarker, source_vfov_deg=45.0)
    pipeline = Pipeline(tracker)
    source = open_source(str(shared_dir / "videos" / "liveportrait_d9.mp4"))
    path = tmp_path / "take.ftrec"
    live = []
    with pipeline.recorder(path, source) as rec:
        for frame, _ in zip(source, range(8), strict=False):
            r = pipeline(frame)
            record(rec, frame, r)
            live.append(r.head)
    recording = read_recording(path)
    assert recording.header["source_vfov_deg"] == 45.0
    R, t = recorded_poses(recording, r.recon.head_frame)
    replayed = [pipeline(frame).head for frame in open_source(str(path), tracker.model.layout)]
    for k, head in enumerate(live):
        assert rotation_error_deg(R[k], head.rotation) < 0.01 and np.abs(t[k] - head.translation_cm).max() < 0.01
        assert rotation_error_deg(replayed[k].rotation, head.rotation) < 0.01
        assert np.abs(replayed[k].translation_cm - head.translation_cm).max() < 0.01
