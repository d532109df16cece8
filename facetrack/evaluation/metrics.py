"""Evaluation metrics, each small and tested on cases with a known answer."""

from __future__ import annotations

import numpy as np

from facetrack.model.correspondence import similarity
from facetrack.vision.crop import face_size


def similarity_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """src (N, 3) moved onto dst by the least-squares rotation, translation and isotropic scale (Umeyama)."""
    s, R, t = similarity(src, dst)
    return s * src @ R.T + t


def aligned_vertex_error_mm(pred_cm: np.ndarray, gt_cm: np.ndarray) -> tuple[float, float]:
    """Mean and median per-vertex distance in millimetres after similarity alignment (inputs in cm)."""
    d = np.linalg.norm(similarity_align(pred_cm, gt_cm) - gt_cm, axis=1) * 10.0
    return float(d.mean()), float(np.median(d))


def rotation_error_deg(R_pred: np.ndarray, R_gt: np.ndarray) -> float:
    """Angle of the rotation that takes one orientation to the other."""
    c = (np.trace(R_pred.T @ R_gt) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def nme_bbox(pred: np.ndarray, gt: np.ndarray) -> float:
    """68-point NME normalised by sqrt(w * h) of the ground-truth landmarks' bounding box (AFLW2000-3D)."""
    return float(np.linalg.norm(pred - gt, axis=1).mean() / face_size(gt))


def photometric_pixels(rendered: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-pixel Euclidean RGB distance (RGB in [0, 1]) over the rendered face's pixels."""
    return np.linalg.norm(rendered[mask] - image[mask], axis=-1)


def angle_errors_deg(pred_deg: np.ndarray, gt_deg: np.ndarray) -> np.ndarray:
    """Absolute per-angle differences in degrees, wrapped to [0, 180] (so 179 vs -179 is 2, not 358)."""
    d = (np.asarray(pred_deg, np.float64) - np.asarray(gt_deg, np.float64) + 180.0) % 360.0 - 180.0
    return np.abs(d)


def jitter(points: np.ndarray, pairs: np.ndarray, scale: np.ndarray) -> float:
    """Mean frame-to-frame motion of (T, N, 2) points over the frame pairs (t-1, t) selected by the (T,) bool
    `pairs` (pairs[t] covers t-1 -> t), each motion divided by that frame's (T,) `scale` (the face size)."""
    motion = np.linalg.norm(np.diff(points, axis=0), axis=-1).mean(-1) / scale[1:]
    sel = pairs[1:] & np.isfinite(motion)
    return float(motion[sel].mean()) if sel.any() else float("nan")


