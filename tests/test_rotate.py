"""train.rotate: a face turned in 3D looks like the same face rendered at the new pose, with labels to match."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facetrack.model.correspondence import MP68, Correspondence
from facetrack.model.facemodel import FaceModel
from facetrack.model.layout import POSE
from facetrack.render.camera import Camera
from facetrack.render.raster_gl import GLRasterizer
from facetrack.render.synthetic import SynthConfig, SyntheticFaces
from facetrack.vision.crop import box_from_landmarks
from train.prepare import Cache
from train.rotate import PREFIX, Turner, rotate_cache


def _known_face(face: FaceModel, seed: int):
    """A synthetic face under ambient light only (shading then does not change as the head turns), its
    render, label vector and exact dense landmarks."""
    synth = SyntheticFaces(face, None, SynthConfig(seed=seed, yaw=10, pitch=5, roll=5, openings=False))
    camera = Camera()
    raster = GLRasterizer.for_camera(camera)
    p = synth.params()
    p["gamma"][:] = 0.0
    p["gamma"][:, :, 0] = 1.0
    albedo = torch.from_numpy(synth.albedo())[None]
    background = synth.background(camera.width)
    render = lambda q: synth.render(q, albedo, synth.eyes(), raster, camera, background)  # noqa: E731
    rgb, v = render(p)
    corr = Correspondence.load()
    dense = camera.project(torch.from_numpy(corr.points(v.v_cam[0].double().numpy()))).numpy()
    label = synth.model.layout.join(p)[0].numpy()
    return render, p, (255 * rgb).round().astype(np.uint8), label, dense.astype(np.float32)


def test_turned_face_matches_a_render_at_the_new_pose(face: FaceModel) -> None:
    render, p, img, label, dense = _known_face(face, seed=4)
    turner = Turner(face, Correspondence.load())
    want = np.degrees(label[POSE][:2]) + np.array([-30.0, 5.0])
    out = turner(img, label, dense, want)
    assert out is not None
    image, new_label, new_dense, lm68 = out
    assert np.allclose(np.degrees(new_label[POSE][:2]), want, atol=1e-3)
    same = np.ones(len(label), bool)
    same[POSE] = False
    assert np.array_equal(new_label[same], label[same])  # identity, expressions, lighting: the fit's own
    box = box_from_landmarks(lm68)  # framed as the app frames a crop
    assert (box.cx, box.cy, box.side) == pytest.approx((120.0, 120.0, 240.0), abs=0.05)

    q = {**p, "rot": torch.from_numpy(new_label[POSE][None, :3].copy()),
         "trans": torch.from_numpy(new_label[POSE][None, 3:].copy())}
    truth, v = render(q)
    corr = Correspondence.load()
    exact = Camera().project(torch.from_numpy(corr.points(v.v_cam[0].double().numpy()))).numpy()
    assert np.abs(new_dense - exact).max() < 0.05 and np.array_equal(lm68, new_dense[MP68])

    region = np.zeros(truth.shape[:2], bool)  # the face itself, away from its outline
    lo, hi = exact.min(0).astype(int) + 8, exact.max(0).astype(int) - 8
    region[lo[1]:hi[1], lo[0]:hi[0]] = True
    turned_err = np.abs(image / 255.0 - truth)[region].mean()
    unturned_err = np.abs(img / 255.0 - truth)[region].mean()
    assert turned_err < 0.03 and turned_err < 0.3 * unturned_err


def test_rotate_cache_adds_turned_copies_and_resumes(face: FaceModel, model_file: Path, tmp_path: Path) -> None:
    import cv2

    cache = Cache(tmp_path / "cache")
    cache.index["labels"] = "test"
    for k in range(3):
        _, _, img, label, dense = _known_face(face, seed=k)
        ok, jpeg = cv2.imencode(".jpg", img)
        cache.add({"jpeg": jpeg.tobytes(), "landmarks": dense[MP68], "confidence": np.ones(68, np.float32),
                   "dense": dense, "pseudo": label, "name": f"photos/{k}.jpg", "val": k == 2})
    cache.flush()
    index = rotate_cache(tmp_path / "cache", 2, model_file=model_file, progress=False)
    made = [n for n in index["done"] if n.startswith(PREFIX)]
    assert len(made) == 2 and sum(index["counts"].values()) == 5
    index = rotate_cache(tmp_path / "cache", 3, model_file=model_file, progress=False)  # continues: one more
    assert len([n for n in index["done"] if n.startswith(PREFIX)]) == 3
    again = rotate_cache(tmp_path / "cache", 3, model_file=model_file, progress=False)
    assert again["done"] == json.loads((tmp_path / "cache" / "index.json").read_text())["done"]
    assert len(again["done"]) == 6  # nothing turned twice, no copy of a copy
    assert again["counts"] == {"train": 4, "val": 2}  # a copy stays in its source's split


def test_rotate_errors_in_one_line(face: FaceModel, model_file: Path, tmp_path: Path, capsys) -> None:
    from train.rotate import main

    assert main([str(tmp_path / "nothing"), "--model", str(model_file)]) == 2
    assert not (tmp_path / "nothing").exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith("rotate: error: no training cache") and "\n" not in err
    unlabelled = Cache(tmp_path / "plain")
    unlabelled.flush()
    assert main([str(tmp_path / "plain"), "--model", str(model_file)]) == 2
    assert "has no labels" in capsys.readouterr().err
    _, _, _, label, dense = _known_face(face, seed=1)  # a crop whose bytes are not an image: counted, skipped
    broken = Cache(tmp_path / "broken")
    broken.index["labels"] = "test"
    broken.add({"jpeg": b"not a jpeg", "landmarks": dense[MP68], "confidence": np.ones(68, np.float32),
                "dense": dense, "pseudo": label, "name": "photos/x.jpg", "val": False})
    broken.flush()
    index = rotate_cache(tmp_path / "broken", 1, model_file=model_file, progress=False)
    assert index["rejected"] == {"unreadable crop": 1} and index["counts"] == {"train": 1}
