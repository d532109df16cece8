"""Rigid pose and the full-perspective camera of a 240x240 face crop.

Camera frame: x right, y up, the camera at the origin looking down -z (OpenGL convention), so the
ICT face (z towards the viewer) faces the camera at rotation zero. Pixel coordinates (u, v) have their
origin at the top-left corner of the crop, v pointing down, pixel centres at k + 0.5.
Intrinsics: focal length `focal` pixels, principal point at the crop centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CROP_SIZE = 240
DEFAULT_FOCAL = 1000.0  # px for the 240 crop: a 13.7 degree field of view
DEFAULT_TRANSLATION = (0.0, 0.0, -115.0)  # cm: the jaw spans about 57% of the crop width


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics for a crop; near/far only bound the rasterizers' depth range."""

    width: int = CROP_SIZE
    height: int = CROP_SIZE
    focal: float = DEFAULT_FOCAL
    near: float = 10.0
    far: float = 1000.0

    def project(self, v_cam: torch.Tensor) -> torch.Tensor:
        """(..., 3) camera-frame points to (..., 2) pixel coordinates."""
        depth = (-v_cam[..., 2]).clamp(min=1e-3)
        u = self.width / 2 + self.focal * v_cam[..., 0] / depth
        v = self.height / 2 - self.focal * v_cam[..., 1] / depth
        return torch.stack([u, v], dim=-1)

    def clip(self, v_cam: torch.Tensor) -> torch.Tensor:
        """(..., 3) to (..., 4) clip coordinates for the rasterizers.

        NDC y is +1 at the bottom image row (v = H), so a rasterizer's framebuffer row 0 (NDC y = -1) is
        the top image row: the read-back needs no flip. The y flip reverses winding; neither rasterizer culls.
        """
        d = -v_cam[..., 2]
        x = (2 * self.focal / self.width) * v_cam[..., 0]
        y = -(2 * self.focal / self.height) * v_cam[..., 1]
        z = ((self.far + self.near) * d - 2 * self.far * self.near) / (self.far - self.near)
        return torch.stack([x, y, z, d], dim=-1)

    def rays(self, uv: torch.Tensor) -> torch.Tensor:
        """Unit camera-frame directions through (..., 2) pixel positions."""
        x = (uv[..., 0] - self.width / 2) / self.focal
        y = -(uv[..., 1] - self.height / 2) / self.focal
        d = torch.stack([x, y, -torch.ones_like(x)], dim=-1)
        return torch.nn.functional.normalize(d, dim=-1)


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(..., 3) (pitch about x, yaw about y, roll about z), radians, to (..., 3, 3) R = Rz Ry Rx."""
    cx, cy, cz = torch.cos(angles).unbind(-1)
    sx, sy, sz = torch.sin(angles).unbind(-1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(*angles.shape[:-1], 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(*angles.shape[:-1], 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(*angles.shape[:-1], 3, 3)
    return rz @ ry @ rx


def matrix_to_euler(R: torch.Tensor) -> torch.Tensor:
    """Inverse of euler_to_matrix for |yaw| < 90 degrees."""
    pitch = torch.atan2(R[..., 2, 1], R[..., 2, 2])
    yaw = torch.asin((-R[..., 2, 0]).clamp(-1.0, 1.0))
    roll = torch.atan2(R[..., 1, 0], R[..., 0, 0])
    return torch.stack([pitch, yaw, roll], dim=-1)


def to_camera(v: torch.Tensor, rot: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Model-frame (B, V, 3) points to the camera frame: R v + t."""
    return v @ euler_to_matrix(rot).transpose(-1, -2) + trans[:, None, :]
