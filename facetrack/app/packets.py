"""What the inference thread hands the GUI: the frame and, per level, ready-to-upload vertex arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetrack.losses import photometric_residual
from facetrack.render.camera import Camera
from facetrack.render.formation import View
from facetrack.render.images import heat_colors
from facetrack.tracker import FrameResult
from facetrack.vision.crop import CropBox

HEAT_MAX = 0.3  # RGB distance shown at the top of the error colour scale


@dataclass
class LevelMesh:
    clip: np.ndarray  # (V, 4) clip coordinates over the whole input frame
    centred: np.ndarray  # (V, 3) camera-frame vertices about their centroid, for the orbit view
    normal: np.ndarray  # (V, 3) camera frame
    albedo: np.ndarray  # (V, 3)
    color: np.ndarray  # (V, 3) shaded
    heat: np.ndarray  # (V, 3) photometric error colour (0 where not visible)
    error: float


@dataclass
class Packet:
    frame: np.ndarray  # (H, W, 3) uint8 RGB
    index: int
    captured: float  # time.monotonic() when the frame was grabbed
    result: FrameResult | None
    base: LevelMesh | None = None
    final: LevelMesh | None = None


def frame_clip(v: View, box: CropBox, camera: Camera, width: int, height: int) -> np.ndarray:
    """Clip coordinates of a level over the full frame: crop pixels -> image pixels -> NDC (y up)."""
    uv_img = box.to_image(v.uv[0].numpy().astype(np.float64))
    w = -v.v_cam[0, :, 2].numpy().astype(np.float64)
    z = ((camera.far + camera.near) * w - 2 * camera.far * camera.near) / (camera.far - camera.near)
    ndc_x = 2 * uv_img[:, 0] / width - 1
    ndc_y = 1 - 2 * uv_img[:, 1] / height
    return np.stack([ndc_x * w, ndc_y * w, z, w], axis=1).astype(np.float32)


def level_mesh(v: View, image, box: CropBox, camera: Camera, width: int, height: int, error: float) -> LevelMesh:
    res = photometric_residual(image, v)[0].numpy() * v.visible[0].numpy()
    cam = v.v_cam[0].numpy()
    return LevelMesh(frame_clip(v, box, camera, width, height), (cam - cam.mean(0)).astype(np.float32),
                     v.n_cam[0].numpy().astype(np.float32), v.albedo[0].numpy().clip(0, 1).astype(np.float32),
                     v.color[0].numpy().clip(0, 1).astype(np.float32), heat_colors(res, HEAT_MAX), error)


def make_packet(frame: np.ndarray, index: int, captured: float, r: FrameResult | None, camera: Camera) -> Packet:
    if r is None:
        return Packet(frame, index, captured, None)
    import torch

    image = torch.from_numpy(r.face.crop).permute(2, 0, 1)[None].float() / 255.0
    h, w = frame.shape[:2]
    return Packet(frame, index, captured, r,
                  level_mesh(r.base, image, r.face.box, camera, w, h, r.photo_base),
                  level_mesh(r.final, image, r.face.box, camera, w, h, r.photo_final))
