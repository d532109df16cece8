"""`facetrack model render`: PNGs of the face model under chosen parameters, for people to look at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import CROP_SIZE, Camera
from facetrack.render.formation import base_params, view
from facetrack.render.images import draw, label, save_png, to_uint8
from facetrack.render.raster_gl import GLRasterizer


def _variants(model: MultiLevelModel, seed: int) -> list[tuple[str, dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    out = [("mean", base_params(model))]
    p = base_params(model)
    p["alpha_id"][:] = torch.randn(1, model.layout.n_id, generator=g)
    out.append((f"identity (seed {seed})", p))
    for name in ("jawOpen", "eyeBlink_L", "mouthSmile_L"):
        p = base_params(model)
        p["alpha_exp"][0, model.exp_names.index(name)] = 1.0
        out.append((name, p))
    p = base_params(model)
    p["rot"][0] = torch.tensor([0.0, 0.6, 0.0])
    out.append(("yaw 34 deg", p))
    for name, coeffs in (("light from left", {3: -0.6}), ("light from top", {1: 0.6}),
                         ("warm light right", {3: 0.5, 8: 0.15})):
        p = base_params(model)
        for k, val in coeffs.items():
            p["gamma"][0, :, k] = val
        if name.startswith("warm"):
            p["gamma"][0] *= torch.tensor([1.15, 0.95, 0.75])[:, None]
        out.append((name, p))
    return out


def landmark_figure(face: FaceModel, model: MultiLevelModel, raster: GLRasterizer, camera: Camera,
                    rot: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The mean face with its 68 landmarks (red), contour candidate strips (blue) and skin mask (green)."""
    p = base_params(model)
    p["rot"][0] = torch.tensor(rot)
    v_b, r_b = model.base(p)
    vw = view(v_b, r_b, p, model.triangles, camera)
    albedo = torch.full_like(r_b, 0.7)
    albedo[0, torch.from_numpy(face.skin_mask)] = torch.tensor([0.55, 0.8, 0.55])
    vw.albedo = albedo
    rgb, _ = draw(raster, camera, vw, face.triangles, mode="albedo")
    img = to_uint8(rgb * 0.6 + 0.4 * draw(raster, camera, vw, face.triangles, mode="geometry")[0])
    uv = vw.uv[0].numpy()
    vis = vw.visible[0].numpy()
    for i in range(17):
        for k in face.contour_candidates(i):
            if vis[k]:
                cv2.circle(img, (int(uv[k, 0]), int(uv[k, 1])), 1, (40, 90, 255), -1)
    for k in face.landmarks:
        cv2.circle(img, (int(uv[k, 0]), int(uv[k, 1])), 2, (255, 30, 30), -1)
    return img


def render_gallery(face: FaceModel, out_dir: Path, seed: int = 0, size: int = CROP_SIZE) -> list[Path]:
    """Write one PNG per variant plus `gallery.png` (all in a grid) and `landmarks.png`."""
    model = MultiLevelModel(face, n_cg=1, n_cr=1)
    camera = Camera(size, size)
    raster = GLRasterizer(size, size, supersample=2)
    tiles, written = [], []
    with torch.no_grad():
        for name, p in _variants(model, seed):
            v_b, r_b = model.base(p)
            rgb, _ = draw(raster, camera, view(v_b, r_b, p, model.triangles, camera), face.triangles,
                          background=np.full((size, size, 3), 0.18, np.float32))
            path = out_dir / (name.split(" (")[0].replace(" ", "_") + ".png")
            save_png(path, rgb)
            written.append(path)
            tiles.append(label(to_uint8(rgb), name))
        lm = [landmark_figure(face, model, raster, camera, r) for r in ((0, 0, 0), (0, 0.7, 0))]
    save_png(out_dir / "landmarks.png", np.concatenate(lm, axis=1))
    rows = [np.concatenate(tiles[i : i + 3], axis=1) for i in range(0, len(tiles), 3)]
    save_png(out_dir / "gallery.png", np.concatenate(rows, axis=0))
    raster.release()
    return written + [out_dir / "landmarks.png", out_dir / "gallery.png"]
