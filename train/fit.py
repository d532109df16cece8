"""Optimization-based fitting (analysis by synthesis) of the face model to images.

The accuracy baseline and a debugging tool: the same model, image formation and loss terms as training,
but the parameters themselves are optimized per image instead of regressed by the encoder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from facetrack.model.facemodel import FaceModel
from facetrack.model.ict import SKIN_TONE
from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import Camera
from facetrack.render.formation import view
from facetrack.render.losses import LandmarkTable, landmark_loss, landmark_points, photometric_l21, statistical_prior
from facetrack.render.occlusion import zbuffer_visible

DEFAULT_LR = {"alpha_id": 0.05, "alpha_exp": 0.02, "beta": 0.05, "rot": 0.004, "trans": 0.05, "gamma": 0.02}


@dataclass
class FitConfig:
    """Loss weights (landmarks per squared pixel) and per-block Adam learning rates."""

    steps: int = 300
    w_landmark: float = 0.01
    w_photo: float = 10.0
    w_prior: float = 1e-4
    w_exp_prior: float = 1e-3
    lr: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LR))
    landmark_only_steps: int = 50  # pose and shape from landmarks first, then photometric refinement
    zbuffer_every: int = 10  # steps between depth-test visibility updates, when a rasterizer is given
    mono_light: bool = False  # white light with fixed ambient level: colour and brightness go to reflectance
    shared_identity: bool = False  # one identity and reflectance for the whole batch (frames of one video)


@dataclass
class FitResult:
    x: torch.Tensor  # (B, D) fitted parameter vectors
    history: list[dict[str, float]]


def fit(model: MultiLevelModel, table: LandmarkTable, camera: Camera, image: torch.Tensor, detected: torch.Tensor,
        confidence: torch.Tensor, x0: torch.Tensor, cfg: FitConfig | None = None,
        albedo: torch.Tensor | None = None, raster=None) -> FitResult:
    """Fit the base level to (B, 3, H, W) images in [0, 1] with (B, 68, 2) landmarks.

    `albedo` (B, V, 3), when given, replaces the reflectance model (known reflectance, as in tests).
    `raster` (a GLRasterizer or NvdiffrastRasterizer), when given, adds z-buffer visibility to the
    photometric term (see facetrack.render.occlusion); without it visibility is backface culling alone.
    """
    cfg = cfg or FitConfig()
    lay = model.layout
    shared = {"alpha_id", "beta"} if cfg.shared_identity else set()
    blocks = {k: (v.detach().mean(0, keepdim=True) if k in shared else v.detach()).clone().requires_grad_(k in cfg.lr)
              for k, v in lay.split(x0).items()}
    B = x0.shape[0]

    def current() -> dict[str, torch.Tensor]:
        return {k: v.expand(B, *v.shape[1:]) if k in shared else v for k, v in blocks.items()}
    opt = torch.optim.Adam([{"params": [blocks[k]], "lr": lr} for k, lr in cfg.lr.items()])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=0.0)
    history = []
    ambient = blocks["gamma"][:, :, 0].detach().mean(dim=1, keepdim=True).clone()
    for step in range(cfg.steps):
        opt.zero_grad()
        p = current()
        v_b, r_b = model.base(p)
        vw = view(v_b, r_b if albedo is None else albedo, p, model.triangles, camera)
        idx = table.slide(vw, detected, camera)
        lm = landmark_loss(landmark_points(vw, idx), detected, confidence).mean()
        if raster is not None and step % cfg.zbuffer_every == 0:
            unoccluded = zbuffer_visible(raster, camera, vw.v_cam, model.triangles)
        mask = model.photo_mask if raster is None else model.photo_mask * unoccluded
        photo = photometric_l21(image, vw, mask).mean()
        prior = statistical_prior(p, model.id_sigma, model.refl_sigma, cfg.w_exp_prior / cfg.w_prior).mean()
        w_photo = cfg.w_photo if step >= cfg.landmark_only_steps else 0.0
        loss = cfg.w_landmark * lm + w_photo * photo + cfg.w_prior * prior
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fitting diverged at step {step}: landmark {lm.item()}, photo {photo.item()}")
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            blocks["alpha_exp"].clamp_(0.0, 1.0)
            if cfg.mono_light:
                g = blocks["gamma"]
                g.copy_(g.mean(dim=1, keepdim=True).expand_as(g))
                g[:, :, 0] = ambient
        history.append({"step": step, "loss": loss.item(), "landmark_px": lm.sqrt().item(), "photo": photo.item()})
    return FitResult(lay.join({k: v.detach() for k, v in current().items()}), history)


def skin_colour_model(face: FaceModel) -> FaceModel:
    """The face model with a 3-mode reflectance space: one global offset per RGB channel."""
    basis = np.zeros((3, face.n_vertices, 3), np.float32)
    for c in range(3):
        basis[c, :, c] = 1.0
    return dataclasses.replace(face, refl_mean=np.tile(np.asarray(SKIN_TONE, np.float32), (face.n_vertices, 1)),
                               refl_basis=basis, refl_sigma=np.full(3, 0.2, np.float32))


def _load_model(model_file, reflectance) -> tuple:
    from facetrack.net.weights import load_reflectance

    face = FaceModel.load(model_file)
    face = load_reflectance(face, reflectance) if reflectance else skin_colour_model(face)
    return face, MultiLevelModel(face, n_cg=1, n_cr=1)


def _frames(path, step: int, max_frames: int):
    """(name, RGB) pairs: one image, or sampled frames of a video."""
    import cv2

    from facetrack.errors import FacetrackError
    from facetrack.io.sources import open_source
    from train.prepare import VIDEO_EXTS

    if path.suffix.lower() in VIDEO_EXTS:
        out = []
        for frame in open_source(str(path)):
            if frame.index % step == 0:
                out.append((f"frame{frame.index:06d}", frame.rgb))
            if len(out) >= max_frames:
                break
        return out
    img = cv2.imread(str(path))
    if img is None:
        raise FacetrackError(f"unreadable image: {path}")
    return [(path.stem, cv2.cvtColor(img, cv2.COLOR_BGR2RGB))]


def fit_files(paths, out, steps: int = 300, model_file=None, reflectance=None, video_step: int = 5,
              max_frames: int = 40, pad: float = 0.25) -> list[dict]:
    """Fit each image, and each video with one shared identity; write params.json, renders and meshes."""
    import json

    from facetrack.model.obj import write_obj
    from facetrack.render.formation import base_params
    from facetrack.render.images import draw, label, save_png, to_uint8
    from facetrack.render.raster_gl import GLRasterizer
    from facetrack.vision.faces import FaceFinder

    face, model = _load_model(model_file, reflectance)
    finder, cam, table = FaceFinder(), Camera(), LandmarkTable(face)
    raster = GLRasterizer.for_camera(cam, 2)
    lay = model.layout
    summary = []
    for path in paths:
        frames = _frames(path, video_step, max_frames)
        is_video = frames[0][0] != path.stem
        found = [(n, f) for n, f in ((n, finder(rgb, pad=0.0 if is_video else pad)) for n, rgb in frames) if f]
        dest = out / path.stem
        if not found:
            print(f"{path}: no face found", flush=True)
            summary.append({"source": str(path), "faces": 0})
            continue
        img = torch.stack([torch.from_numpy(f.crop).permute(2, 0, 1).float() / 255 for _, f in found])
        lm = torch.stack([torch.from_numpy(f.landmarks) for _, f in found])
        conf = torch.stack([torch.from_numpy(f.confidence) for _, f in found])
        p0 = {k: v.expand(len(found), *v.shape[1:]).clone() for k, v in base_params(model).items()}
        cfg = FitConfig(steps=steps, shared_identity=is_video, mono_light=reflectance is None)
        res = fit(model, table, cam, img, lm, conf, lay.join(p0), cfg, raster=raster)
        with torch.no_grad():
            p = lay.split(res.x)
            v_b, r_b = model.base(p)
            vw = view(v_b, r_b, p, model.triangles, cam)
            photo = photometric_l21(img, vw, model.photo_mask)
        records, tiles = [], []
        for b, (name, f) in enumerate(found):
            pb = {k: v[b].tolist() for k, v in p.items() if k not in ("delta_g", "delta_r")}
            pb["rot_degrees"] = np.degrees(p["rot"][b].numpy()).tolist()
            pb["alpha_exp"] = dict(zip(model.exp_names, p["alpha_exp"][b].tolist(), strict=True))
            records.append({"frame": name, "params": pb, "photometric_error": float(photo[b]),
                            "landmark_px": res.history[-1]["landmark_px"],
                            "crop_box": [f.box.cx, f.box.cy, f.box.side]})
            if b < 8:
                inp = img[b].permute(1, 2, 0).numpy()
                shaded, _ = draw(raster, cam, vw, face.triangles, b, inp)
                alb, _ = draw(raster, cam, vw, face.triangles, b, None, mode="albedo")
                tiles.append(np.concatenate([label(to_uint8(inp), name), label(to_uint8(shaded), "fit"),
                                             label(to_uint8(alb), "albedo")], 1))
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "params.json").write_text(json.dumps({"source": str(path), "layout": lay.table(),
                                                      "units": "cm, radians (rot), degrees (rot_degrees)",
                                                      "frames": records}, indent=1))
        np.save(dest / "params.npy", res.x.numpy())
        save_png(dest / "render.png", np.concatenate(tiles, 0))
        write_obj(dest / "mesh.obj", v_b[0].numpy(), face.triangles, r_b[0].numpy())
        summary.append({"source": str(path), "faces": len(found), "photometric_error": float(photo.mean()),
                        "landmark_px": res.history[-1]["landmark_px"]})
        print(f"{path}: {len(found)} face(s), photometric {float(photo.mean()):.4f}, "
              f"landmarks {res.history[-1]['landmark_px']:.2f} px -> {dest}", flush=True)
    raster.release()
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    from pathlib import Path

    from facetrack.errors import FacetrackError

    ap = argparse.ArgumentParser(prog="python -m train.fit",
                                 description="Fit the face model to images, and to videos with one identity.")
    ap.add_argument("inputs", type=Path, nargs="+", help="image or video files")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--reflectance", type=Path, help="learned base reflectance (weights/reflectance.npz)")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--video-step", type=int, default=5)
    ap.add_argument("--max-frames", type=int, default=40)
    args = ap.parse_args(argv)
    try:
        fit_files(args.inputs, args.out, args.steps, args.model, args.reflectance, args.video_step,
                  args.max_frames)
    except (FacetrackError, FloatingPointError) as e:
        print(f"fit: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
