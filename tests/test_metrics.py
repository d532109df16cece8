"""Metrics on cases with a known answer."""

from __future__ import annotations

import numpy as np
import torch

from facetrack.metrics import aligned_vertex_error_mm, nme_bbox, photometric_pixels, rotation_error_deg
from facetrack.render.camera import euler_to_matrix


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
