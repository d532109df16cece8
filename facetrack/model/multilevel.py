"""The multi-level face model: affine 3DMM base level plus learned corrective spaces (final level).

v_base = mean + E_id a_id + E_exp a_exp          r_base = r_mean + E_r beta
v_final = v_base + F_g(delta_g | Theta_g)        r_final = r_base + F_r(delta_r | Theta_r)

Theta (the corrective bases) are trainable parameters; at test time they are fixed and only the
coefficients delta come from the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facetrack.model.facemodel import NARROW_FACE, FaceModel
from facetrack.model.layout import ParamLayout


class LinearCorrective(nn.Module):
    """F(delta | Theta) = Theta^T delta, per-vertex 3-vectors; the variant the paper found best."""

    def __init__(self, n_coeff: int, n_vertices: int, init_std: float = 1e-3) -> None:
        super().__init__()
        self.n_vertices = n_vertices
        # Small random start: with delta = 0 (an encoder whose head starts at zero) the final level equals
        # the base level, yet delta and Theta both receive gradients (two zeros would hold each other at zero).
        self.basis = nn.Parameter(init_std * torch.randn(n_coeff, n_vertices * 3))

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        return (delta @ self.basis).view(delta.shape[0], self.n_vertices, 3)


class MLPCorrective(nn.Module):
    """Non-linear variant: a two-layer MLP from delta to per-vertex offsets."""

    def __init__(self, n_coeff: int, n_vertices: int, hidden: int = 256) -> None:
        super().__init__()
        self.n_vertices = n_vertices
        self.net = nn.Sequential(nn.Linear(n_coeff, hidden), nn.ELU(), nn.Linear(hidden, n_vertices * 3))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        return self.net(delta).view(delta.shape[0], self.n_vertices, 3)


CORRECTIVES = {"linear": LinearCorrective, "mlp": MLPCorrective}


@dataclass
class Levels:
    """Geometry (cm, model frame) and reflectance (RGB in [0, 1]) of both levels, each (B, V, 3)."""

    v_base: torch.Tensor
    r_base: torch.Tensor
    v_final: torch.Tensor
    r_final: torch.Tensor
    geo_offset: torch.Tensor  # F_g(delta_g), for the smoothness and stabilization terms
    refl_offset: torch.Tensor  # F_r(delta_r)


def vertex_normals(v: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals of (B, V, 3) vertices.

    Flat (B * V) rows throughout: index_select and one flat index_add per corner are twice as fast on the
    CPU as advanced indexing and a batched index_add along dim 1.
    """
    B, V = v.shape[:2]
    flat = v.reshape(B * V, 3)
    offset = (torch.arange(B, device=v.device) * V)[:, None]
    corners = [(triangles[:, k][None] + offset).reshape(-1) for k in range(3)]
    a, b, c = (flat.index_select(0, i) for i in corners)
    fn = torch.cross(b - a, c - a, dim=-1)
    n = v.new_zeros(B * V, 3)
    for i in corners:
        n = n.index_add(0, i, fn)
    return nn.functional.normalize(n.view(B, V, 3), dim=-1, eps=1e-12)


class MultiLevelModel(nn.Module):
    """Turns a parameter vector into base- and final-level geometry and reflectance."""

    def __init__(self, face: FaceModel, n_cg: int = 500, n_cr: int = 500, corrective: str = "linear") -> None:
        super().__init__()
        V = face.n_vertices
        self.layout = ParamLayout(face.id_basis.shape[0], face.exp_basis.shape[0], face.refl_basis.shape[0],
                                  n_cg, n_cr)
        self.exp_names = [str(n) for n in face.exp_names]

        def flat(basis):
            return torch.from_numpy(basis.reshape(basis.shape[0], V * 3).copy())

        self.register_buffer("mean", torch.from_numpy(face.mean.copy()))
        self.register_buffer("id_basis", flat(face.id_basis))
        self.register_buffer("id_sigma", torch.from_numpy(face.id_sigma.copy()))
        self.register_buffer("exp_basis", flat(face.exp_basis))
        self.register_buffer("refl_mean", torch.from_numpy(face.refl_mean.copy()))
        self.register_buffer("refl_basis", flat(face.refl_basis))
        self.register_buffer("refl_sigma", torch.from_numpy(face.refl_sigma.copy()))
        self.register_buffer("triangles", torch.from_numpy(face.triangles.astype("int64")))
        self.register_buffer("landmarks", torch.from_numpy(face.landmarks.astype("int64")))
        self.register_buffer("photo_mask", torch.from_numpy(face.photo_mask.astype("float32")))
        # What is drawn and compared with the image at run time: the narrow face area the landmarks bound
        # (forehead to chin), not the scalp cap, ears or neck, which no landmark constrains.
        in_face = (face.triangles < NARROW_FACE).all(axis=1)
        self.register_buffer("face_triangles", torch.from_numpy(face.triangles[in_face].astype("int64")),
                             persistent=False)
        face_mask = (torch.arange(V) < NARROW_FACE).float()
        self.register_buffer("face_photo_mask", self.photo_mask * face_mask, persistent=False)
        self.geo_corrective = CORRECTIVES[corrective](n_cg, V)
        self.refl_corrective = CORRECTIVES[corrective](n_cr, V)

    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])

    def base(self, p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Base level (affine 3DMM) geometry and reflectance."""
        return self.geometry(p), self.reflectance(p)

    def geometry(self, p: dict[str, torch.Tensor], neutral: torch.Tensor | None = None) -> torch.Tensor:
        """Base level geometry alone; `neutral`: this identity's `neutral` face, when it is already known."""
        neutral = self.neutral(p["alpha_id"]) if neutral is None else neutral
        return neutral + (p["alpha_exp"] @ self.exp_basis).view(p["alpha_exp"].shape[0], self.n_vertices, 3)

    def neutral(self, alpha_id: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) the faces of these identities without expression: what stays while one person is
        tracked (the identity is held), so run time computes it once per person instead of every frame."""
        return self.mean + (alpha_id @ self.id_basis).view(alpha_id.shape[0], self.n_vertices, 3)

    def reflectance(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Base level reflectance alone (what changes when only the appearance is refitted)."""
        return self.refl_mean + (p["beta"] @ self.refl_basis).view(p["beta"].shape[0], self.n_vertices, 3)

    def forward(self, p: dict[str, torch.Tensor]) -> Levels:
        v_b, r_b = self.base(p)
        dg = self.geo_corrective(p["delta_g"])
        dr = self.refl_corrective(p["delta_r"])
        return Levels(v_b, r_b, v_b + dg, r_b + dr, dg, dr)

    def params(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a (B, D) parameter vector by this model's layout."""
        return self.layout.split(x)
