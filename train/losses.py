"""All loss terms of the paper, each returned separately so they are logged and checked one by one.

Image terms (landmarks, photometric, prior) come from facetrack.render.losses, shared with fitting and the app;
the corrective regularizers live here because only training has learnable corrective bases.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facetrack.model.correspondence import Correspondence
from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import Levels, MultiLevelModel
from facetrack.render.camera import Camera
from facetrack.render.formation import View, views
from facetrack.render.losses import LandmarkTable, landmark_loss, landmark_points, photometric_l21, statistical_prior
from facetrack.track.fitter import FitConfig, landmark_weights


@dataclass
class LossWeights:
    """Term weights; landmarks are per squared crop pixel, photometric per unit RGB distance."""

    landmark: float = 0.01
    photo_base: float = 1.0
    photo_final: float = 1.0
    prior: float = 5e-4
    prior_exp: float = 5e-3
    smooth: float = 50.0
    stabilize: float = 0.5
    sparsity: float = 0.05
    constancy: float = 1.0
    sparsity_alpha: float = 50.0
    sparsity_p: float = 0.9
    constancy_pairs: int = 2000
    # With a cache from `train.prepare --landmarker` (off by default: plain caches have no labels):
    dense: float = 0.0  # MediaPipe's 468 landmarks, per squared crop pixel, weighted as the fit weights them
    distill: float = 0.0  # towards the fit's parameters: expressions, identity (in sigmas), rotation (radians)
    distill_identity: float = 0.1  # share of the identity part in `distill`
    distill_expression: float = 1.0  # and of the expressions' mean squared error (53: their sum)
    distill_primary: float = 0.0  # and of the squared error of the fit's primary shapes (jawOpen, blinks) on top
    distill_rotation: float = 1.0  # and of the rotation's squared error (radians)
    # Learning without forgetting when fine-tuning (`init`): the base reflectance (in sigmas) and the SH
    # lighting stay near what the init encoder says for the same crop, so that distilling the geometry does
    # not drag the base level's colours along (the app's fit keeps the encoder's reflectance and lighting).
    anchor: float = 0.0


def mirrored_shapes(names: list[str]) -> list[int]:
    """Per expression, the index of its mirror image (eyeBlink_L <-> eyeBlink_R, mouthLeft <-> mouthRight,
    jawLeft <-> jawRight); symmetric shapes map to themselves."""
    swap = {"_L": "_R", "_R": "_L", "Left": "Right", "Right": "Left"}
    out = []
    for n in names:
        m = next((n[: -len(a)] + b for a, b in swap.items() if n.endswith(a)), n)
        out.append(names.index(m) if m in names else names.index(n))
    return out


def laplacian(x: torch.Tensor, ring_rows: torch.Tensor, ring_cols: torch.Tensor, ring_deg: torch.Tensor
              ) -> torch.Tensor:
    """Uniform graph Laplacian of per-vertex (B, V, 3) values: x_i minus the mean of its 1-ring."""
    nb = torch.zeros_like(x).index_add(1, ring_rows, x[:, ring_cols])
    return x - nb / ring_deg[:, None]


def chromaticity(r: torch.Tensor) -> torch.Tensor:
    return r / r.sum(-1, keepdim=True).clamp(min=1e-4)


class TrainingLoss(nn.Module):
    """Computes every term for a batch; `forward` returns a dict of (scalar) terms, unweighted."""

    def __init__(self, face: FaceModel, model: MultiLevelModel, camera: Camera, weights: LossWeights) -> None:
        super().__init__()
        self.model, self.camera, self.w = model, camera, weights
        self.table = LandmarkTable(face)
        rows = torch.repeat_interleave(torch.arange(face.n_vertices), torch.from_numpy(
            (face.ring_ptr[1:] - face.ring_ptr[:-1]).astype("int64")))
        self.register_buffer("ring_rows", rows)
        self.register_buffer("ring_cols", torch.from_numpy(face.ring_idx.astype("int64")))
        self.register_buffer("ring_deg", torch.from_numpy((face.ring_ptr[1:] - face.ring_ptr[:-1]).astype("float32")))
        self.register_buffer("skin", torch.from_numpy(face.skin_mask.nonzero()[0].astype("int64")))
        self.raster = None  # an NvdiffrastRasterizer on CUDA: rasterized photometric term
        corr = Correspondence.load()
        self.register_buffer("dense_tri", torch.from_numpy(corr.tri.astype("int64")))
        self.register_buffer("dense_bary", torch.from_numpy(corr.bary.astype("float32")))
        weights = landmark_weights(FitConfig(), len(corr.tri)).astype("float32")
        self.register_buffer("dense_w", torch.from_numpy(weights))
        names = list(face.exp_names)
        self.register_buffer("primary", torch.tensor([names.index(n) for n in FitConfig().primary_shapes
                                                          if n in names], dtype=torch.long))
        self.register_buffer("exp_mirror", torch.tensor(mirrored_shapes(names), dtype=torch.long))

    def dense_term(self, v: View, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted squared distance (crop px) of the 468 correspondence points to MediaPipe's, per labelled image."""
        uv = (v.uv[:, self.dense_tri] * self.dense_bary[None, :, :, None]).sum(2)  # (B, 468, 2)
        d = ((uv - batch["dense"]) ** 2).sum(-1)
        per = (d * self.dense_w).sum(-1) / self.dense_w.sum()
        return (per * batch["labelled"]).sum() / batch["labelled"].sum().clamp(min=1.0)

    def distill_term(self, p: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Squared distance to the fit's parameters (pseudo-labels). A mirror image's target is the mirrored
        face: left and right shapes swapped, yaw and roll negated (x -> -x conjugates Rz Ry Rx into
        Rz(-roll) Ry(-yaw) Rx(pitch)), and no identity target (ICT's identity modes are not symmetric). The
        rotation target then turns with the crop's in-plane augmentation (roll is the outermost angle)."""
        t = self.model.layout.without_correctives(batch["pseudo"])  # labels from before the correctives grew too
        flipped = batch.get("flipped", torch.zeros_like(batch["labelled"]))
        side = 1.0 - 2.0 * flipped[:, None]
        rot = t["rot"] * torch.cat([torch.ones_like(side), side, side], 1)
        rot[:, 2] = rot[:, 2] + batch["roll_add"]
        exp = torch.where(flipped[:, None] > 0, t["alpha_exp"][:, self.exp_mirror], t["alpha_exp"])
        d2 = (p["alpha_exp"] - exp) ** 2
        e = self.w.distill_expression * d2.mean(-1) + self.w.distill_primary * d2[:, self.primary].sum(-1)
        i = (((p["alpha_id"] - t["alpha_id"]) / self.model.id_sigma) ** 2).mean(-1) * (1.0 - flipped)
        r = ((p["rot"] - rot) ** 2).sum(-1)
        per = e + self.w.distill_identity * i + self.w.distill_rotation * r
        return (per * batch["labelled"]).sum() / batch["labelled"].sum().clamp(min=1.0)

    def anchor_term(self, p: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
        """Squared distance of base reflectance (in sigmas) and lighting to the init encoder's prediction."""
        refl = (((p["beta"] - t["beta"]) / self.model.refl_sigma) ** 2).mean(-1)
        light = ((p["gamma"] - t["gamma"]) ** 2).flatten(1).mean(-1)
        return (refl + light).mean()

    def image_terms(self, v: View, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.table.slide(v, batch["landmarks"], self.camera)
        lm = landmark_loss(landmark_points(v, idx), batch["landmarks"], batch["confidence"]).mean()
        if self.raster is not None:
            photo = rasterized_photometric(self.raster, self.camera, v, self.model.triangles, batch["image"],
                                           self.model.photo_mask)
        else:
            photo = photometric_l21(batch["image"], v, self.model.photo_mask).mean()
        return lm, photo

    def sparsity(self, r: torch.Tensor) -> torch.Tensor:
        """Local reflectance sparsity: chromaticity-weighted l_p (p < 1) differences over 1-rings."""
        with torch.no_grad():
            c = chromaticity(r)
            w = torch.exp(-self.w.sparsity_alpha * (c[:, self.ring_rows] - c[:, self.ring_cols]).norm(dim=-1))
        d = (r[:, self.ring_rows] - r[:, self.ring_cols]).norm(dim=-1).clamp(min=1e-6) ** self.w.sparsity_p
        return (w * d).sum(-1).mean() / self.ring_rows.numel()

    def constancy(self, r: torch.Tensor) -> torch.Tensor:
        """Global skin reflectance constancy on random pairs of skin vertices."""
        n = self.skin.numel()
        i = self.skin[torch.randint(0, n, (self.w.constancy_pairs,), device=r.device)]
        j = self.skin[torch.randint(0, n, (self.w.constancy_pairs,), device=r.device)]
        return ((r[:, i] - r[:, j]) ** 2).sum(-1).mean()

    def forward(self, x: torch.Tensor, batch: dict[str, torch.Tensor], stage: int) -> tuple[dict, Levels]:
        p = self.model.params(x)
        if stage == 1:  # base level only: correctives are not in play yet
            p = {**p, "delta_g": torch.zeros_like(p["delta_g"]), "delta_r": torch.zeros_like(p["delta_r"])}
        lv = self.model(p)
        vb, vf = views(lv, p, self.model.triangles, self.camera)
        terms = {}
        terms["landmark"], terms["photo_base"] = self.image_terms(vb, batch)
        terms["prior"] = statistical_prior(p, self.model.id_sigma, self.model.refl_sigma,
                                           self.w.prior_exp / self.w.prior).mean()
        if "pseudo" in batch and (self.w.dense or self.w.distill):
            terms["dense"] = self.dense_term(vb, batch)
            terms["distill"] = self.distill_term(p, batch)
        if "anchor" in batch and self.w.anchor:
            terms["anchor"] = self.anchor_term(p, self.model.params(batch["anchor"]))
        if stage == 2:
            lm_f, terms["photo_final"] = self.image_terms(vf, batch)
            terms["landmark"] = 0.5 * (terms["landmark"] + lm_f)
            geo = lv.geo_offset
            terms["smooth"] = (laplacian(geo, self.ring_rows, self.ring_cols, self.ring_deg) ** 2).sum(-1).mean()
            terms["stabilize"] = (geo**2).sum(-1).mean()
            terms["sparsity"] = self.sparsity(lv.r_final)
            terms["constancy"] = self.constancy(lv.r_final)
        return terms, lv

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(getattr(self.w, k) * v for k, v in terms.items())


def rasterized_photometric(raster, camera: Camera, v: View, triangles: torch.Tensor, image: torch.Tensor,
                           vertex_weight: torch.Tensor) -> torch.Tensor:
    """Dense photometric l2,1 over the rasterized level's pixels (nvdiffrast, CUDA), each pixel weighted by
    the interpolated per-vertex weight: the photometric mask, as the point-sampled term uses. Without it the
    rims of the eye and mouth holes are compared with lashes, pupils and teeth, and the reflectance
    correctives learn dark rings there."""
    attrs = torch.cat([v.color, vertex_weight[None, :, None].expand(v.color.shape[0], -1, 1)], dim=-1)
    out, mask = raster(camera.clip(v.v_cam), triangles, attrs)
    rgb, w = out[..., :3], out[..., 3]
    diff = (rgb - image.permute(0, 2, 3, 1) * mask[..., None]).norm(dim=-1)
    return ((diff * w).sum((1, 2)) / w.sum((1, 2)).clamp(min=1.0)).mean()
