"""Metrics on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facetrack.evaluation.metrics import (
    aligned_vertex_error_mm,
    angle_errors_deg,
    jitter,
    nme_bbox,
    photometric_pixels,
    rotation_error_deg,
)
from facetrack.evaluation.video import still_pairs
from facetrack.render.camera import euler_to_matrix
from facetrack.vision.crop import face_size


def _rot(angles) -> np.ndarray:
    return euler_to_matrix(torch.tensor(angles, dtype=torch.float64)).numpy()


def test_known_similarity_gives_zero_error() -> None:
    pts = np.random.default_rng(0).normal(size=(500, 3)) * 5
    moved = 1.7 * pts @ _rot([0.3, -1.1, 0.4]).T + np.array([3.0, -2.0, 40.0])
    mean, median = aligned_vertex_error_mm(moved, pts)
    assert mean < 1e-9 and median < 1e-9
    noisy = pts + np.random.default_rng(1).normal(size=pts.shape) * 0.01  # 0.1 mm noise per axis
    assert 0.1 < aligned_vertex_error_mm(noisy, pts)[0] < 0.2


def test_rotation_error() -> None:
    R = _rot([0.2, 0.5, -0.3])
    assert rotation_error_deg(R, R) < 1e-6
    assert abs(rotation_error_deg(R @ _rot([0.0, np.radians(10), 0.0]), R) - 10) < 1e-6


def test_nme_and_photometric() -> None:
    gt = np.random.default_rng(2).uniform(0, 100, (68, 2))
    assert nme_bbox(gt, gt) == 0
    w, h = np.ptp(gt[:, 0]), np.ptp(gt[:, 1])
    assert abs(nme_bbox(gt + [3.0, 4.0], gt) - 5 / np.sqrt(w * h)) < 1e-12
    img = np.random.default_rng(3).uniform(size=(8, 8, 3))
    mask = np.ones((8, 8), bool)
    assert photometric_pixels(img, img, mask).max() == 0
    assert np.allclose(photometric_pixels(img, img + [0.3, 0.4, 0.0], mask), 0.5)


def test_angle_errors_wrap() -> None:
    assert np.allclose(angle_errors_deg([179.0, 10.0, -5.0], [-179.0, -20.0, -5.0]), [2.0, 30.0, 0.0])


def test_jitter_and_still_segments() -> None:
    T = 40
    base = np.random.default_rng(4).uniform(100, 200, (68, 2))
    scale = face_size(base)
    still = np.repeat(base[None], T, axis=0)
    assert jitter(still, np.ones(T, bool), np.full(T, scale)) == 0
    moving = still + np.arange(T)[:, None, None] * np.array([3.0, 4.0])  # 5 px per frame
    assert abs(jitter(moving, np.ones(T, bool), np.full(T, scale)) - 5 / scale) < 1e-12
    noisy = still + np.random.default_rng(5).normal(size=still.shape) * 0.3
    assert still_pairs(noisy)[5:-5].all()  # noise alone is still
    assert not still_pairs(moving).any()  # 5 px per frame on a ~100 px face is motion
    half = np.concatenate([noisy[:20], moving[20:] - moving[20] + noisy[19]])
    pairs = still_pairs(half)
    assert pairs[6:15].all() and not pairs[22:].any()


def test_face_size() -> None:
    pts = np.array([[0.0, 0.0], [40.0, 10.0], [10.0, 90.0]])
    assert face_size(pts) == pytest.approx(60.0)


def test_report_has_no_nan(tmp_path) -> None:
    import json

    from facetrack.evaluation.report import write_report

    doc = write_report({"a": {"x": float("nan"), "y": {"z": 1.5, "n": 3}}, "b": {"x": 2.0}}, tmp_path, "t")
    assert doc["models"]["a"]["x"] is None
    assert json.loads((tmp_path / "report.json").read_text())["models"]["b"]["x"] == 2.0
    md = (tmp_path / "report.md").read_text()
    assert "| x | - | 2 |" in md and "| y z | 1.5 | - |" in md and "| y n | 3 | - |" in md
