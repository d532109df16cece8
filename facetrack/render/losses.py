"""Image-formation loss terms shared by training, fitting, evaluation and the app's error overlay.

Terms that need learned corrective bases (smoothness, stabilization, reflectance sparsity and
constancy) live with the training code in `train/`; these only need the model and an image.
"""

from __future__ import annotations

import torch
from torch import nn

from facetrack.model.facemodel import CONTOUR_LANDMARKS, FaceModel
from facetrack.render.camera import Camera
from facetrack.render.formation import View
from facetrack.render.points import sample


def photometric_residual(image: torch.Tensor, v: View) -> torch.Tensor:
    """(B, V) Euclidean RGB distance between the image sampled at each vertex and its shaded colour."""
    diff = sample(image, v.uv) - v.color
    return torch.sqrt((diff * diff).sum(-1) + 1e-10)


def photometric_l21(image: torch.Tensor, v: View, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) the dense l2,1 photometric term: mean over visible vertices of the per-vertex RGB distance.

    With RGB in [0, 1] this is also the paper's photometric error figure (0.092 base, 0.072 final).
    `mask` (B, V) can restrict it further (for example to the face region seen by a segmentation).
    """
    w = v.visible.to(image.dtype) if mask is None else v.visible.to(image.dtype) * mask
    return (photometric_residual(image, v) * w).sum(-1) / w.sum(-1).clamp(min=1.0)


class LandmarkTable(nn.Module):
    """The 68 landmark vertices and, for the jawline (0-16), the candidate strips they slide along."""

    def __init__(self, face: FaceModel) -> None:
        super().__init__()
        cands = [torch.from_numpy(face.contour_candidates(i).astype("int64")) for i in CONTOUR_LANDMARKS]
        K = max(len(c) for c in cands)
        table = torch.full((len(cands), K), -1, dtype=torch.int64)
        for i, c in enumerate(cands):
            table[i, : len(c)] = c
        self.register_buffer("fixed", torch.from_numpy(face.landmarks.astype("int64")))
        self.register_buffer("candidates", table)

    @torch.no_grad()
    def slide(self, v: View, detected: torch.Tensor, camera: Camera) -> torch.Tensor:
        """(B, 68) vertex indices: fixed points, and for each contour point the candidate vertex closest
        to the camera ray through the detected 2D landmark (re-chosen every step)."""
        B = detected.shape[0]
        n_c = self.candidates.shape[0]
        rays = camera.rays(detected[:, :n_c])  # (B, 17, 3)
        valid = self.candidates >= 0
        pts = v.v_cam[:, self.candidates.clamp(min=0)]  # (B, 17, K, 3)
        along = (pts * rays[:, :, None]).sum(-1, keepdim=True)
        dist = (pts - along * rays[:, :, None]).norm(dim=-1)
        dist = dist.masked_fill(~valid, float("inf"))
        choice = self.candidates.expand(B, -1, -1).gather(2, dist.argmin(-1, keepdim=True))[..., 0]
        idx = self.fixed.expand(B, -1).clone()
        idx[:, :n_c] = choice
        return idx


def landmark_points(v: View, idx: torch.Tensor) -> torch.Tensor:
    """(B, 68, 2) projected positions of the (B, 68) landmark vertices."""
    return v.uv.gather(1, idx[..., None].expand(-1, -1, 2))


def landmark_loss(projected: torch.Tensor, detected: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """(B,) confidence-weighted mean squared pixel distance between projected and detected landmarks."""
    sq = ((projected - detected) ** 2).sum(-1)
    return (sq * confidence).sum(-1) / confidence.sum(-1).clamp(min=1e-6)


def statistical_prior(p: dict[str, torch.Tensor], id_sigma: torch.Tensor, refl_sigma: torch.Tensor,
                      exp_weight: float = 1.0) -> torch.Tensor:
    """(B,) Tikhonov regularizer: squared identity and reflectance weights over their sigma, plus
    squared expression weights (ICT blendshapes have no sigma; weights live in [0, 1])."""
    return (((p["alpha_id"] / id_sigma) ** 2).sum(-1) + ((p["beta"] / refl_sigma) ** 2).sum(-1)
            + exp_weight * (p["alpha_exp"] ** 2).sum(-1))
