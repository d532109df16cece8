"""Z-buffer visibility for point sampling: drops front-facing vertices hidden behind the nose, jaw or cheek.

The paper's point-based renderer uses backface culling alone; a depth test from either rasterizer is
an optional refinement (non-differentiable, recomputed every few steps) for fitting and evaluation.
"""

from __future__ import annotations

import torch

from facetrack.render.camera import Camera
from facetrack.render.points import sample

DEPTH_TOLERANCE = 0.4  # cm a vertex may lie behind the rendered surface and still count as visible


@torch.no_grad()
def zbuffer_visible(raster, camera: Camera, v_cam: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """(B, V) bool from a depth render with `raster` (GLRasterizer on CPU, NvdiffrastRasterizer on CUDA)."""
    depth = -v_cam[..., 2:3]
    clip = camera.clip(v_cam)
    if isinstance(raster, torch.nn.Module):
        img, mask = raster(clip, triangles, depth)
        dmap = img / mask[..., None].clamp(min=1e-6)
    else:
        tris = triangles.cpu().numpy()
        maps = []
        for b in range(v_cam.shape[0]):
            d, cov = raster.render(clip[b].cpu().numpy(), tris, depth[b].cpu().numpy())
            maps.append(torch.from_numpy(d / cov[..., None].clip(min=1e-6)))
        dmap = torch.stack(maps).to(v_cam)
    # Sample the nearest surface depth at each vertex: the minimum over a 3x3 neighbourhood guards edges.
    dmap = -torch.nn.functional.max_pool2d(-dmap.permute(0, 3, 1, 2).masked_fill(
        dmap.permute(0, 3, 1, 2) <= 0, 1e9), 3, stride=1, padding=1)
    surface = sample(dmap, camera.project(v_cam))[..., 0]
    return depth[..., 0] <= surface + DEPTH_TOLERANCE
