"""The head's pose in the camera that took the frames, not in the crop's.

The fit poses the face in the 240x240 crop's own camera (facetrack.render.camera): one that looks straight at
the face, principal point at the crop's centre, focal length DEFAULT_FOCAL crop pixels. A camera or a video is
one fixed camera instead. A head that moves across its frame without turning is seen more and more from the
side, which the crop's camera reads as a turn; and since the crop follows the face and keeps its size, the
crop frame's translation stays centred at about the same distance whatever the head does. An avatar driven
by that would turn its head when the person steps aside and never move.

So streams and the window's plots report the pose in the source camera. The face's origin sits on the ray
through the pixel where the crop's camera puts it, at the distance where the source camera shows the face
as large as the crop does (the crop camera's distance times the ratio of the focal lengths, both in crop
pixels), and the head keeps its rotation relative to that line of sight: what the crop's camera sees is how
the head is turned against the ray it is seen along.

Nobody tells a webcam's or a video's field of view: SOURCE_VFOV_DEG unless given (`--fov`), the vertical
field of view MediaPipe's face geometry assumes too. Photos keep the crop's camera: a photo is often
itself a crop (AFLW2000's are), whose centre says nothing about where the camera looked, and the datasets that
label photos pose the face as the crop's camera sees it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from facetrack.io.recording import Recording, quaternion_to_matrix
from facetrack.render.camera import DEFAULT_FOCAL, Camera, matrix_to_euler
from facetrack.render.reconstruction import Reconstruction
from facetrack.vision.crop import CropBox

SOURCE_VFOV_DEG = 63.0


@dataclass(frozen=True)
class HeadPose:
    """The canonical head frame in a camera frame (x right, y up, looking down -z)."""

    rotation: np.ndarray  # (3, 3) head frame -> camera frame
    translation_cm: np.ndarray  # (3,) the model origin in the camera frame

    @property
    def degrees(self) -> np.ndarray:
        """(pitch, yaw, roll) in degrees."""
        return np.degrees(matrix_to_euler(torch.from_numpy(self.rotation)).numpy())


def source_focal(frame_size: tuple[int, int], vfov_deg: float = SOURCE_VFOV_DEG) -> float:
    """The source camera's focal length in image pixels for its vertical field of view."""
    return frame_size[1] / 2 / math.tan(math.radians(vfov_deg) / 2)


def turn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The least rotation that takes unit vector a onto unit vector b (Rodrigues; a and b not opposite)."""
    x = np.cross(a, b)
    K = np.array([[0.0, -x[2], x[1]], [x[2], 0.0, -x[0]], [-x[1], x[0], 0.0]])
    return np.eye(3) + K + K @ K / (1.0 + float(a @ b))


def to_source(rotation: np.ndarray, translation: np.ndarray, box: CropBox, frame_size: tuple[int, int],
              vfov_deg: float = SOURCE_VFOV_DEG) -> HeadPose:
    """A pose in the crop's camera (rotation into it, translation in cm) as the source camera sees it.
    `frame_size`: (width, height) in pixels."""
    t = np.asarray(translation, np.float64)
    f = source_focal(frame_size, vfov_deg)
    pixel = box.to_image(Camera().project(torch.from_numpy(t)).numpy())  # where the crop shows the origin
    seen = Camera(*frame_size, focal=f).rays(torch.from_numpy(pixel)).numpy()  # the ray it is seen along
    distance = np.linalg.norm(t)
    axis = np.array([0.0, 0.0, -1.0])
    return HeadPose(turn(axis, seen) @ turn(t / distance, axis) @ rotation,
                    seen * distance * f * box.scale / DEFAULT_FOCAL)


def head_pose(recon: Reconstruction, box: CropBox, frame_size: tuple[int, int] | None,
              vfov_deg: float = SOURCE_VFOV_DEG) -> HeadPose:
    """The head's pose in the source camera; in the crop's camera without a frame size (photos)."""
    R, t = recon.head_rotation, recon.params["trans"].astype(np.float64)
    return HeadPose(R, t) if frame_size is None else to_source(R, t, box, frame_size, vfov_deg)


def recorded_poses(rec: Recording, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 3) rotations of `frame` (the model's frame turned by this: the identity for the model's, the
    correspondence's head_frame for the head's) and (N, 3) translations in cm of a recording's frames in the
    source camera, with the field of view it was recorded with; in the crop's camera for recordings without
    crop boxes and frame sizes (format version 1)."""
    R = quaternion_to_matrix(rec.values["quaternion"]) @ frame
    t = rec.values["translation"].astype(np.float64)
    if "crop_box" not in rec.values:
        return R, t
    vfov = float(rec.header.get("source_vfov_deg") or SOURCE_VFOV_DEG)
    poses = [to_source(R[k], t[k], CropBox(*map(float, rec.values["crop_box"][k])),
                       tuple(int(n) for n in rec.values["frame_size"][k]), vfov) for k in range(len(rec))]
    return np.array([p.rotation for p in poses]).reshape(-1, 3, 3), np.array([p.translation_cm for p in poses]
                                                                           ).reshape(-1, 3)
