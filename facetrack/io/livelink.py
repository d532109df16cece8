"""A recording as Live Link Face CSV: what Unreal's Live Link Face importer and many retargeting tools read.

Columns, in the order of the iPhone app's own CSV: Timecode (HH:MM:SS:FF.mmm from the first frame with a
face, at the recording's frame rate), BlendshapeCount (61), the 52 ARKit shapes (facetrack.io.arkit: the
ICT pairs browInnerUp_L/_R and cheekPuff_L/_R averaged, TongueOut 0), HeadYaw, HeadPitch, HeadRoll (radians,
MediaPipe's canonical head frame in the source camera's frame (facetrack.track.head), the angles the window
shows in degrees: yaw positive turning to the person's left, pitch positive looking down, roll positive
tilting to the person's right), then the eye angles.
facetrack does not track the eyeballs: the eye yaw and pitch come from the eyeLook shapes (one unit of
eyeLookOut_L turns the left eye 30 degrees outwards), the roll is 0. Frames without a face are left out.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.io.arkit import ARKIT_NAMES, eye_angles, to_arkit, upper_camel
from facetrack.io.recording import Recording
from facetrack.render.camera import matrix_to_euler
from facetrack.track.head import recorded_poses

HEAD_EYE_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                    "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
COLUMNS = ("Timecode", "BlendshapeCount", *(upper_camel(n) for n in ARKIT_NAMES), *HEAD_EYE_COLUMNS)


def timecode(seconds: float, fps: float) -> str:
    """HH:MM:SS:FF.mmm: frames within the second, and the second's fraction in milliseconds."""
    whole, ms = divmod(int(round(seconds * 1000)), 1000)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    frame = min(int((seconds - np.floor(seconds)) * fps + 1e-3), max(int(round(fps)) - 1, 0))
    return f"{h:02d}:{m:02d}:{s:02d}:{frame:02d}.{ms:03d}"


def recording_fps(rec: Recording) -> float:
    """The header's frame rate, or the median from the timestamps (a camera's header may say 0)."""
    fps = float(rec.header.get("fps") or 0.0)
    if fps > 0:
        return fps
    d = np.diff(rec.timestamp)
    d = d[d > 0]
    return float(1.0 / np.median(d)) if len(d) else 30.0


def export_livelink_csv(rec: Recording, path: Path, head_frame: np.ndarray) -> tuple[int, int]:
    """Write the CSV; returns (rows written, frames left out for having no face)."""
    present = rec.present
    names = list(rec.header["expression_names"])
    exp = rec.values["expression"][present].astype(np.float64)
    R = recorded_poses(rec, head_frame)[0][present]
    pitch, yaw, roll = matrix_to_euler(torch.from_numpy(R)).numpy().T
    blend = to_arkit(names, exp)
    eyes = eye_angles(names, exp)
    t = rec.timestamp[present] - (rec.timestamp[present][0] if present.any() else 0.0)
    fps = recording_fps(rec)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for k in range(len(t)):
                w.writerow([timecode(float(t[k]), fps), len(COLUMNS) - 2,
                            *(f"{v:.6f}" for v in blend[k]),
                            *(f"{v:.6f}" for v in (yaw[k], pitch[k], roll[k], *eyes[k]))])
    except OSError as e:
        raise FacetrackError(f"cannot write {path}: {e.strerror or e}") from None
    return len(t), int((~present).sum())
