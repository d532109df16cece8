"""What the inference thread hands the GUI: the frame and, per shown level, one array ready to upload.

Built on the inference thread from the frame's Reconstruction (nothing is recomputed here); the GUI thread
only writes these bytes into a vertex buffer and draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facetrack.io.sources import Frame
from facetrack.render.camera import Camera
from facetrack.render.images import heat_colors
from facetrack.render.reconstruction import LEVELS, Level, Needs
from facetrack.track.pipeline import HOLD_FRAMES
from facetrack.track.tracker import FrameResult
from facetrack.vision.crop import CropBox

HEAT_MAX = 0.3  # RGB distance shown at the top of the error colour scale
VERTEX_FORMAT = ("4f 3f 3f 3f 3f 3f", "in_clip", "in_centred", "in_normal", "in_albedo", "in_color", "in_heat")
VERTEX_FLOATS = 19
# One torch thread for the inference thread: the reconstruction step is many small ops, and on a small
# machine the GUI, the capture thread and MediaPipe need the other cores (two threads: 2-4x slower there).
INFERENCE_THREADS = 1
WINDOW_NEEDS = Needs(frozenset(LEVELS))  # base and final side by side; the error only with the overlay (E)


@dataclass
class Packet:
    frame: np.ndarray | None  # (H, W, 3) uint8 RGB; None when replaying a recording
    size: tuple[int, int]  # (width, height) of the frame
    index: int
    timestamp: float  # seconds in the source
    captured: float  # time.monotonic() when the frame was grabbed
    result: FrameResult | None
    meshes: dict[str, np.ndarray] = field(default_factory=dict)  # level -> (V, VERTEX_FLOATS) float32


def frame_clip(level: Level, box: CropBox, camera: Camera, width: int, height: int) -> np.ndarray:
    """Clip coordinates of a level over the full frame: crop pixels -> image pixels -> NDC (y up)."""
    uv_img = box.to_image(level.uv.astype(np.float64))
    w = -level.v_cam[:, 2].astype(np.float64)
    z = ((camera.far + camera.near) * w - 2 * camera.far * camera.near) / (camera.far - camera.near)
    ndc_x = 2 * uv_img[:, 0] / width - 1
    ndc_y = 1 - 2 * uv_img[:, 1] / height
    return np.stack([ndc_x * w, ndc_y * w, z, w], axis=1)


def pack_level(level: Level, box: CropBox, camera: Camera, width: int, height: int) -> np.ndarray:
    """(V, 19) float32: clip, centred camera-frame position (orbit view), normal, albedo, colour, error heat.
    Written column block by block into one array (a concatenation in float64 took twice as long)."""
    cam = level.v_cam
    out = np.empty((len(cam), VERTEX_FLOATS), np.float32)
    out[:, 0:4] = frame_clip(level, box, camera, width, height)
    out[:, 4:7] = cam - cam.mean(0)
    out[:, 7:10] = level.normal
    out[:, 10:13] = level.albedo
    out[:, 13:16] = level.color
    out[:, 16:19] = heat_colors(level.residual, HEAT_MAX) if level.residual is not None else 0.0
    return out


def make_packet(frame: Frame, captured: float, r: FrameResult | None, camera: Camera) -> Packet:
    """A face missing for up to HOLD_FRAMES frames keeps its last mesh on screen; after that, none is drawn."""
    w, h = frame.frame_size
    pk = Packet(frame.rgb, (w, h), frame.index, frame.timestamp, captured, r)
    if r is not None and r.lost_frames <= HOLD_FRAMES:
        pk.meshes = {name: pack_level(level, r.box, camera, w, h) for name, level in r.recon.levels.items()}
    return pk
