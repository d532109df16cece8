"""Differentiable rasterizer on CUDA: nvdiffrast's RasterizeCudaContext (no OpenGL needed).

The context is created lazily on first use, so importing this module costs nothing on a CPU machine.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from facetrack.errors import FacetrackError


def _build_plugin() -> None:
    """Build (first use) and import nvdiffrast's CUDA plugin. nvdiffrast 0.3.3 builds it with torch's
    cpp_extension.load and then imports it by name, but recent torch no longer puts the build folder on
    sys.path, so that import fails right after a good build (NVlabs/nvdiffrast#228): add the folder, retry."""
    from nvdiffrast.torch import ops
    from torch.utils import cpp_extension

    try:
        ops._get_plugin()
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("nvdiffrast_plugin"):
            raise
        sys.path.insert(0, cpp_extension._get_build_directory(e.name, False))
        ops._get_plugin()


class NvdiffrastRasterizer(nn.Module):
    """Rasterize, interpolate per-vertex attributes and (optionally) antialias silhouettes."""

    def __init__(self, width: int, height: int, antialias: bool = True) -> None:
        super().__init__()
        self.width, self.height, self.antialias = width, height, antialias
        self._ctx = None

    def _context(self, device: torch.device):
        if self._ctx is None:
            if device.type != "cuda":
                raise FacetrackError("the nvdiffrast rasterizer needs CUDA tensors; use point sampling on the CPU")
            try:
                import nvdiffrast.torch as dr
            except ImportError:
                raise FacetrackError("nvdiffrast is not installed: pip install -e '.[cuda]'") from None
            _build_plugin()
            self._ctx = dr.RasterizeCudaContext(device=device)
        return self._ctx

    def forward(self, clip: torch.Tensor, triangles: torch.Tensor, attrs: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, V, 4) clip coordinates, (T, 3) triangles, (B, V, C) attributes -> (B, H, W, C), (B, H, W)."""
        import nvdiffrast.torch as dr

        ctx = self._context(clip.device)
        tris = triangles.to(torch.int32).contiguous()
        clip = clip.float().contiguous()
        rast, _ = dr.rasterize(ctx, clip, tris, resolution=[self.height, self.width])
        out, _ = dr.interpolate(attrs.float().contiguous(), rast, tris)
        mask = (rast[..., 3:] > 0).float()
        if self.antialias:
            both = dr.antialias(torch.cat([out * mask, mask], dim=-1).contiguous(), rast, clip, tris)
            out, mask = both[..., :-1], both[..., -1:]
        return out, mask[..., 0]
