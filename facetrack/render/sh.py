"""Lambertian shading under 3-band spherical-harmonics lighting (9 coefficients per RGB channel).

The basis is the real SH basis with the Lambertian kernel's band factors folded in and scaled so that
gamma = (1, 0, ..., 0) per channel is unit ambient light: irradiance E(n) = sum_k gamma_k H_k(n).
"""

from __future__ import annotations

import math

import torch

_A = (math.pi, 2 * math.pi / 3, math.pi / 4)  # Lambertian kernel band factors
_C0 = 1 / (2 * math.sqrt(math.pi))
_C1 = math.sqrt(3 / (4 * math.pi))
_C2 = math.sqrt(15 / (4 * math.pi))
_C20 = math.sqrt(5 / (16 * math.pi))
_NORM = _A[0] * _C0  # makes the constant basis function 1


def sh_basis(n: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit normals to (..., 9) irradiance basis values."""
    x, y, z = n.unbind(-1)
    k1, k2 = _A[1] * _C1 / _NORM, _A[2] / _NORM
    return torch.stack([
        torch.ones_like(x),
        k1 * y, k1 * z, k1 * x,
        k2 * _C2 * x * y, k2 * _C2 * y * z, k2 * _C20 * (3 * z * z - 1), k2 * _C2 * x * z,
        k2 * _C2 / 2 * (x * x - y * y),
    ], dim=-1)


def irradiance(normals: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) normals and (B, 3, 9) coefficients to (B, V, 3) RGB irradiance."""
    return sh_basis(normals) @ gamma.transpose(-1, -2)


def default_gamma(batch: int = 1, ambient: float = 0.8, frontal: float = 0.35) -> torch.Tensor:
    """Mostly ambient light with some light from the camera side (+z in the camera frame)."""
    g = torch.zeros(batch, 3, 9)
    g[:, :, 0] = ambient
    g[:, :, 2] = frontal
    return g
