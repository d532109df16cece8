"""Optimization-based fitting (analysis by synthesis) of the face model to images.

The accuracy baseline and a debugging tool: the same model, image formation and loss terms as training,
but the parameters themselves are optimized per image instead of regressed by the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from facetrack.losses import LandmarkTable, landmark_loss, landmark_points, photometric_l21, statistical_prior
from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import Camera
from facetrack.render.formation import view
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
    blocks = {k: v.detach().clone().requires_grad_(k in cfg.lr) for k, v in lay.split(x0).items()}
    opt = torch.optim.Adam([{"params": [blocks[k]], "lr": lr} for k, lr in cfg.lr.items()])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps, eta_min=0.0)
    history = []
    for step in range(cfg.steps):
        opt.zero_grad()
        v_b, r_b = model.base(blocks)
        vw = view(v_b, r_b if albedo is None else albedo, blocks, model.triangles, camera)
        idx = table.slide(vw, detected, camera)
        lm = landmark_loss(landmark_points(vw, idx), detected, confidence).mean()
        if raster is not None and step % cfg.zbuffer_every == 0:
            unoccluded = zbuffer_visible(raster, camera, vw.v_cam, model.triangles)
        mask = model.photo_mask if raster is None else model.photo_mask * unoccluded
        photo = photometric_l21(image, vw, mask).mean()
        prior = statistical_prior(blocks, model.id_sigma, model.refl_sigma, cfg.w_exp_prior / cfg.w_prior).mean()
        w_photo = cfg.w_photo if step >= cfg.landmark_only_steps else 0.0
        loss = cfg.w_landmark * lm + w_photo * photo + cfg.w_prior * prior
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fitting diverged at step {step}: landmark {lm.item()}, photo {photo.item()}")
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            blocks["alpha_exp"].clamp_(0.0, 1.0)
        history.append({"step": step, "loss": loss.item(), "landmark_px": lm.sqrt().item(), "photo": photo.item()})
    return FitResult(lay.join({k: v.detach() for k, v in blocks.items()}), history)
