"""The `.ftrec` recording format: a header, then one fixed-size binary record per processed frame.

    b"FTREC1\\n" | uint32 header length | header JSON (utf-8) | record | record | ...

The header names every field and its size; a record is float64 timestamp (s), int64 frame index, then
float32 values in header order: quaternion (w, x, y, z), translation (cm), identity, expressions (ARKit
names in the header), delta_g, delta_r, (version 4) the base reflectance weights, SH gamma (27), photometric
error base and final (NaN when not computed), crop box (cx, cy, side in frame pixels), frame size (width,
height) and face present (1, or 0 when no face was found and the last parameters are held), and (version 3)
a uint32 CRC-32 of the record's bytes before it. Files before version 4 replay with the mean reflectance.
A recording made with fewer corrective coefficients than the model has (weights whose correctives grew since)
replays with the new ones at 0, which is what those weights' encoder says for them. Each record is written
and flushed on its own, so a crash or kill loses at most the frame being written; the reader drops a
truncated last record. A record whose CRC does not match (a damaged file) is skipped and counted, never read
as numbers. Versions 1 (without crop box, frame size and face) and 2 (without the CRC) still read; their
records are checked for plausibility instead (finite time, a frame index that does not go backwards, a unit
quaternion). A full disk raises a one-line FacetrackError and leaves what was written readable.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.model.layout import ParamLayout
from facetrack.render.camera import euler_to_matrix, matrix_to_euler
from facetrack.vision.crop import CropBox

MAGIC = b"FTREC1\n"
VERSION = 4
MAX_INDEX_STEP = 100_000  # a larger jump of the frame index between records marks a damaged one


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation to a unit quaternion (w, x, y, z) with w >= 0."""
    m = R
    t = np.trace(m)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k]) * 2
        q = [0.0] * 4
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.asarray(q)
    return q * (1 if q[0] >= 0 else -1) / np.linalg.norm(q)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z) to (..., 3, 3) rotations."""
    w, a, b, c = np.moveaxis(np.asarray(q, np.float64), -1, 0)
    R = np.stack([1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w),
                  2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w),
                  2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)], -1)
    return R.reshape(*R.shape[:-1], 3, 3)


def fields_for(layout: ParamLayout) -> list[tuple[str, int]]:
    return [("quaternion", 4), ("translation", 3), ("identity", layout.n_id), ("expression", layout.n_exp),
            ("delta_g", layout.n_cg), ("delta_r", layout.n_cr), ("reflectance", layout.n_refl), ("gamma", 27),
            ("photo_base", 1),
            ("photo_final", 1), ("crop_box", 3), ("frame_size", 2), ("face", 1)]


def frame_values(layout: ParamLayout, x: np.ndarray, photometric: dict[str, float], box: CropBox,
                 frame_size: tuple[int, int], present: bool = True) -> np.ndarray:
    """The float32 part of a record from one parameter vector."""
    p = layout.split(torch.as_tensor(x, dtype=torch.float64)[None])
    q = matrix_to_quaternion(euler_to_matrix(p["rot"])[0].numpy())
    parts = [q, p["trans"][0], p["alpha_id"][0], p["alpha_exp"][0], p["delta_g"][0], p["delta_r"][0],
             p["beta"][0], p["gamma"][0].reshape(-1), [photometric.get("base", np.nan)],
             [photometric.get("final", np.nan)], [box.cx, box.cy, box.side], frame_size, [1.0 if present else 0.0]]
    return np.concatenate([np.asarray(v, np.float64).ravel() for v in parts]).astype(np.float32)


class Recorder:
    """Appends frames to a `.ftrec` file; `close` (or a with block) ends it."""

    def __init__(self, path: Path, layout: ParamLayout, exp_names: list[str], source: str = "", fps: float = 0.0,
                 source_vfov_deg: float | None = None):
        self.path, self.layout = Path(path), layout
        self.fields = fields_for(layout)
        header = {"version": VERSION, "fields": self.fields, "expression_names": exp_names, "source": source,
                  "fps": fps, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "units": {
                      "translation": "cm, the crop's camera frame (x right, y up, looking down -z)",
                      "quaternion": "w, x, y, z; model to the crop's camera rotation", "timestamp": "seconds",
                      "source_vfov_deg": "degrees: the source camera's vertical field of view (the pose in it)"}}
        if source_vfov_deg is not None:
            header["source_vfov_deg"] = source_vfov_deg
        blob = json.dumps(header).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.path.open("wb")
            self._write(MAGIC + struct.pack("<I", len(blob)) + blob)
        except OSError as e:
            raise FacetrackError(f"cannot start recording {self.path}: {e.strerror or e}") from None
        self.frames = 0

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.file.flush()

    def write(self, timestamp: float, frame_index: int, x: np.ndarray, photometric: dict[str, float], box: CropBox,
              frame_size: tuple[int, int], present: bool = True) -> None:
        """One frame; `photometric` holds the levels whose error was computed (the others are NaN); `present`
        False marks a frame without a face whose parameters are the last ones held."""
        values = frame_values(self.layout, x, photometric, box, frame_size, present)
        record = struct.pack("<dq", timestamp, frame_index) + values.tobytes()
        try:
            self._write(record + struct.pack("<I", zlib.crc32(record)))
        except OSError as e:
            self.file.close()
            raise FacetrackError(f"recording stopped after {self.frames} frames: cannot write {self.path} "
                                 f"({e.strerror or e}); the frames so far are kept") from None
        self.frames += 1

    def close(self) -> None:
        if not self.file.closed:
            self.file.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Recording:
    """A recording read back: header plus one array per field, (N, size)."""

    header: dict
    timestamp: np.ndarray
    frame_index: np.ndarray
    values: dict[str, np.ndarray]
    damaged: int = 0  # records skipped: CRC mismatch (version 3) or implausible values (versions 1 and 2)
    truncated: bool = False  # the last record was cut short (a crash while writing) and dropped

    def problems(self) -> str:
        """What was skipped, in words ("" when nothing)."""
        parts = [f"{self.damaged} damaged records skipped"] if self.damaged else []
        parts += ["a truncated last record dropped"] if self.truncated else []
        return ", ".join(parts)

    def __len__(self) -> int:
        return len(self.timestamp)

    @property
    def present(self) -> np.ndarray:
        """(N,) bool: frames with a face (version 1 files have no flag: all)."""
        return self.values["face"][:, 0] > 0.5 if "face" in self.values else np.ones(len(self), bool)

    def params(self, layout: ParamLayout) -> np.ndarray:
        """(N, D) parameter vectors in `layout` order (rotation back from the quaternion to Euler angles). The
        base reflectance is 0 (the mean) in files without it; correctives the model has beyond the recorded
        ones are 0; any other size that differs from the model's is a one-line FacetrackError."""
        R = quaternion_to_matrix(self.values["quaternion"])
        parts = {"alpha_id": self.values["identity"], "alpha_exp": self.values["expression"],
                 "beta": self.values.get("reflectance", np.zeros((len(self), layout.n_refl), np.float32)),
                 "delta_g": self.values["delta_g"], "delta_r": self.values["delta_r"],
                 "rot": matrix_to_euler(torch.from_numpy(R)).numpy(), "trans": self.values["translation"],
                 "gamma": self.values["gamma"]}
        sizes = layout.sizes
        for name, v in parts.items():
            have, want = v.shape[1], sizes[name]
            if have < want and name in ("delta_g", "delta_r"):
                parts[name] = np.concatenate([v, np.zeros((len(v), want - have), v.dtype)], 1)
            elif have != want:
                raise FacetrackError(f"the recording has {have} {name} values, the model {want}: replay it with "
                                     f"the weights it was recorded with (--weights)")
        x = layout.join({k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in parts.items()})
        return x.numpy()


def read_recording(path: Path) -> Recording:
    """Read a `.ftrec` file: damaged records are skipped and counted, a truncated last one is dropped, a
    damaged header is a one-line FacetrackError."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise FacetrackError(f"cannot read recording {path}: {e.strerror or e}") from None
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise FacetrackError(f"not a facetrack recording: {path}")
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    try:
        header = json.loads(data[start : start + n])
        version = int(header.get("version", 1))
        fields = [(str(name), int(size)) for name, size in header["fields"]]
        if not fields or any(size <= 0 for _, size in fields) or version < 1:
            raise ValueError("no fields")
        header["expression_names"] = [str(x) for x in header["expression_names"]]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        raise FacetrackError(f"damaged recording header: {path} (the frames cannot be located)") from None
    width = sum(s for _, s in fields)
    parts = [("t", "<f8"), ("i", "<i8"), ("v", "<f4", (width,))] + ([("crc", "<u4")] if version >= 3 else [])
    rec_dtype = np.dtype(parts)
    body = data[start + n :]
    count = len(body) // rec_dtype.itemsize
    recs = np.frombuffer(body[: count * rec_dtype.itemsize], rec_dtype)
    if version >= 3:
        size = rec_dtype.itemsize - 4
        raw = np.frombuffer(body[: count * rec_dtype.itemsize], np.uint8).reshape(count, rec_dtype.itemsize)
        raw = raw[:, :size]
        ok = np.array([zlib.crc32(r.tobytes()) for r in raw], np.uint32) == recs["crc"]
    else:
        ok = _plausible(recs, fields)
    ok &= _in_order(recs["i"], ok)
    recs = recs[ok]
    values, off = {}, 0
    for name, size in fields:
        values[name] = recs["v"][:, off : off + size].copy()
        off += size
    return Recording(header, recs["t"].copy(), recs["i"].copy(), values, damaged=int((~ok).sum()),
                     truncated=len(body) % rec_dtype.itemsize != 0)


def _plausible(recs: np.ndarray, fields: list[tuple[str, int]]) -> np.ndarray:
    """Records of files without a CRC that could be real: finite, non-negative time and frame index, a unit
    quaternion, no infinite value."""
    ok = np.isfinite(recs["t"]) & (recs["t"] >= 0) & (recs["t"] < 1e8) & (recs["i"] >= 0) & (recs["i"] < 1e9)
    if fields and fields[0] == ("quaternion", 4):
        q = recs["v"][:, :4].astype(np.float64)
        ok &= np.abs(np.linalg.norm(np.nan_to_num(q, nan=9.0), axis=1) - 1.0) < 1e-3
    ok &= np.isfinite(np.where(np.isnan(recs["v"]), 0.0, recs["v"])).all(axis=1)  # NaN allowed, inf not
    return ok


def _in_order(index: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Frame indices go forward in bounded steps: a repeated, earlier or far-off index among good records is a
    spliced or damaged one."""
    keep, last = np.zeros(len(index), bool), None
    for k in np.flatnonzero(ok):
        i = int(index[k])
        if last is None or last < i <= last + MAX_INDEX_STEP:
            keep[k], last = True, i
    return keep
