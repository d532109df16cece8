"""Pictures of a run: training curves and validation renders (input | base | final | albedo | error)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import Camera
from facetrack.render.formation import views
from facetrack.render.images import draw, heat_colors, label, save_png, to_uint8
from facetrack.render.losses import photometric_residual
from facetrack.render.raster_gl import GLRasterizer

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _panel(series: dict[str, tuple[np.ndarray, np.ndarray]], title: str, w: int = 560, h: int = 320,
           log: bool = False) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    m = 50
    cv2.putText(img, title, (m, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (m, 35), (w - 10, h - 30), (0, 0, 0), 1)
    vals = [v for _, (x, y) in series.items() for v in (np.log10(np.maximum(y, 1e-12)) if log else y)]
    xs = [v for _, (x, y) in series.items() for v in x]
    if not vals:
        return img
    lo, hi = float(np.min(vals)), float(np.max(vals))
    hi = hi if hi > lo else lo + 1
    x0, x1 = float(min(xs)), float(max(xs)) if max(xs) > min(xs) else float(min(xs)) + 1
    for k, (name, (x, y)) in enumerate(series.items()):
        yy = np.log10(np.maximum(y, 1e-12)) if log else y
        px = m + (np.asarray(x) - x0) / (x1 - x0) * (w - 10 - m)
        py = h - 30 - (yy - lo) / (hi - lo) * (h - 65)
        pts = np.stack([px, py], 1).astype(np.int32)
        col = COLOURS[k % len(COLOURS)][::-1]
        cv2.polylines(img, [pts], False, col, 1, cv2.LINE_AA)
        cv2.putText(img, name, (w - 150, 52 + 16 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.42, col, 1, cv2.LINE_AA)
    fmt = (lambda v: f"1e{v:.1f}") if log else (lambda v: f"{v:.3g}")
    cv2.putText(img, fmt(hi), (2, 42), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1)
    cv2.putText(img, fmt(lo), (2, h - 32), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1)
    cv2.putText(img, f"step {x0:.0f} .. {x1:.0f}", (m, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1)
    return img


def smooth(y: np.ndarray, k: int = 25) -> np.ndarray:
    if len(y) < k:
        return y
    return np.convolve(np.pad(y, (k // 2, k - 1 - k // 2), mode="edge"), np.ones(k) / k, mode="valid")


def plot_curves(run: Path, out: Path) -> None:
    """Training terms (smoothed, log scale) over global steps, and validation figures."""
    rows = _read(run / "log.csv")
    val = _read(run / "val.csv")
    n1 = max((int(r["step"]) for r in rows if r["stage"] == "1"), default=0)

    def gstep(r):
        return int(r["step"]) + (n1 if r["stage"] == "2" else 0)

    terms = [k for k in (rows[0] if rows else {}) if k not in ("stage", "step", "epoch", "time_s")]
    series = {}
    for t in terms:
        pts = [(gstep(r), float(r[t])) for r in rows if r.get(t) not in (None, "")]
        if pts:
            x, y = map(np.asarray, zip(*pts, strict=True))
            series[t] = (x, smooth(y))
    vser = {}
    for t in ("photo_base", "photo_final"):
        pts = [(gstep(r), float(r[t])) for r in val]
        if pts:
            vser[f"val {t}"] = tuple(map(np.asarray, zip(*pts, strict=True)))
    lser = {"val landmark px": tuple(map(np.asarray, zip(*[(gstep(r), float(r["landmark_px"])) for r in val],
                                                             strict=True)))} if val else {}
    top = _panel(series, f"training terms (log10, stage 2 from step {n1})", w=1120, log=True)
    bottom = np.concatenate([_panel(vser, "validation photometric error"), _panel(lser, "validation landmarks")], 1)
    save_png(out, np.concatenate([top, bottom], 0)[..., ::-1].copy())


@torch.no_grad()
def validation_renders(model: MultiLevelModel, encoder, images: torch.Tensor, out: Path, vmax: float = 0.3) -> None:
    """Rows of input | base | final | final albedo | final photometric error (heat map, 0..vmax)."""
    cam = Camera()
    raster = GLRasterizer.for_camera(cam, 2)
    tris = model.triangles.cpu().numpy()
    p = model.params(encoder(images))
    vb, vf = views(model(p), p, model.triangles, cam)
    heat_view = dataclasses.replace(vf, albedo=torch.from_numpy(heat_colors(
        photometric_residual(images, vf).numpy(), vmax)))
    rows = []
    for b in range(images.shape[0]):
        inp = images[b].permute(1, 2, 0).numpy()
        base, _ = draw(raster, cam, vb, tris, b, inp)
        final, _ = draw(raster, cam, vf, tris, b, inp)
        alb, _ = draw(raster, cam, vf, tris, b, None, mode="albedo")
        heat, _ = draw(raster, cam, heat_view, tris, b, inp * 0.4, mode="albedo")
        tiles = [to_uint8(t) for t in (inp, base, final, alb, heat)]
        names = ("input", "base", "final", "albedo", f"error 0..{vmax}")
        rows.append(np.concatenate([label(t, n) for t, n in zip(tiles, names, strict=True)], 1))
    raster.release()
    save_png(out, np.concatenate(rows, 0))
