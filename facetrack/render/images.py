"""Images people look at: a level drawn over a background with the CPU rasterizer, and PNG output."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.render.camera import Camera
from facetrack.render.formation import View
from facetrack.render.raster_gl import GLRasterizer
from facetrack.render.reconstruction import Level
from facetrack.render.sh import irradiance
from facetrack.vision.crop import CropBox

MODES = ("shaded", "albedo", "geometry")
_GEOMETRY_LIGHT = torch.tensor([[0.75, 0.0, 0.45, 0.15, 0.0, 0.0, -0.05, 0.0, 0.0]])


def _colors(mode: str, color: torch.Tensor, albedo: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    if mode == "shaded":
        return color
    if mode == "albedo":
        return albedo
    if mode == "geometry":
        return 0.8 * irradiance(normal[None], _GEOMETRY_LIGHT.expand(3, 9)[None])[0]
    raise ValueError(f"mode must be one of {MODES}")


def _render(raster: GLRasterizer, camera: Camera, v_cam: torch.Tensor, color: torch.Tensor, triangles: np.ndarray,
            background: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    clip = camera.clip(v_cam).detach().cpu().numpy()
    rgb, cov = raster.render(clip, triangles, color.detach().clamp(0, 1).cpu().numpy())
    bg = np.zeros_like(rgb) if background is None else background.astype(np.float32)
    return rgb + (1 - cov[..., None]) * bg, cov


def draw(raster: GLRasterizer, camera: Camera, view: View, triangles: np.ndarray, b: int = 0,
         background: np.ndarray | None = None, mode: str = "shaded") -> tuple[np.ndarray, np.ndarray]:
    """Batch item b of a view as (H, W, 3) linear RGB in [0, 1] over background, and its coverage."""
    color = _colors(mode, view.color[b], view.albedo[b], view.n_cam[b])
    return _render(raster, camera, view.v_cam[b], color, triangles, background)


def draw_level(raster: GLRasterizer, camera: Camera, level: Level, triangles: np.ndarray,
               background: np.ndarray | None = None, mode: str = "shaded") -> tuple[np.ndarray, np.ndarray]:
    """A reconstructed level (numpy) drawn like `draw`."""
    t = {k: torch.from_numpy(getattr(level, k)) for k in ("v_cam", "color", "albedo", "normal")}
    return _render(raster, camera, t["v_cam"], _colors(mode, t["color"], t["albedo"], t["normal"]), triangles,
                   background)


def overlay_on_image(raster: GLRasterizer, camera: Camera, level: Level, triangles: np.ndarray, box: CropBox,
                     rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The level drawn over the whole input image (rendered in the crop, warped back), and its coverage."""
    crop_rgb, cov = draw_level(raster, camera, level, triangles)
    h, w = rgb.shape[:2]
    inv = cv2.invertAffineTransform(box.affine())
    big = cv2.warpAffine(crop_rgb * cov[..., None], inv, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(cov, inv, (w, h), flags=cv2.INTER_LINEAR)
    return big + (1 - mask[..., None]) * rgb.astype(np.float32) / 255.0, mask


def heat_colors(values: np.ndarray, vmax: float) -> np.ndarray:
    """Values in [0, vmax] to RGB in [0, 1] on the inferno colour map (same shape plus a channel axis)."""
    v = np.clip(np.asarray(values, np.float32) / vmax, 0, 1)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO)[:, 0, ::-1]
    return lut[(v * 255).astype(np.int64)].astype(np.float32) / 255.0


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB float [0, 1] or uint8 image (PNG at the highest lossless compression: some ship in git);
    a one-line error when the disk refuses."""
    img = rgb if rgb.dtype == np.uint8 else to_uint8(rgb)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise FacetrackError(f"could not write image: {path}")


def label(img: np.ndarray, text: str) -> np.ndarray:
    """A copy of a uint8 RGB image with a caption in its top-left corner."""
    out = img.copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out
