"""The paper's point-based rendering: each vertex is projected and the image is sampled there.

No rasterization: a vertex takes part when it is front-facing (backface culling) and inside the crop.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

MIN_COSINE = 0.1  # about 84 degrees: grazing points sample the background as often as the face


def front_facing(v_cam: torch.Tensor, n_cam: torch.Tensor, min_cos: float = MIN_COSINE) -> torch.Tensor:
    """(B, V) bool: backface culling; the normal points towards the camera at the origin, by a margin."""
    return (n_cam * -v_cam).sum(-1) > min_cos * v_cam.norm(dim=-1)


def inside(uv: torch.Tensor, width: int, height: int, margin: float = 0.5) -> torch.Tensor:
    """(B, V) bool: the projected point lies inside the crop."""
    u, v = uv.unbind(-1)
    return (u >= margin) & (u <= width - margin) & (v >= margin) & (v <= height - margin)


def sample(image: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of a (B, C, H, W) image at (B, V, 2) pixel positions, as (B, V, C)."""
    H, W = image.shape[-2:]
    grid = torch.stack([2 * uv[..., 0] / W - 1, 2 * uv[..., 1] / H - 1], dim=-1)
    out = F.grid_sample(image, grid[:, None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0].transpose(1, 2)
