"""Files people take away: a recording as CSV, and per photo the parameters, landmarks, renders and mesh.

`facetrack reconstruct` writes, per image, into OUT/<image stem>/:
  params.json     named parameter blocks, pose in degrees, expressions by ARKit name, photometric errors
  landmarks.json  the 68 projected final-level landmarks in input-image pixels
  base.png, final.png  the levels rendered over the input image; mask.png  the face coverage
  mesh.obj        final level, model frame (cm), with reflectance as vertex colours
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.io.recording import Recording
from facetrack.model.multilevel import MultiLevelModel
from facetrack.model.obj import write_obj
from facetrack.render.camera import Camera, matrix_to_euler
from facetrack.render.images import overlay_on_image, save_png, to_uint8
from facetrack.render.raster_gl import GLRasterizer
from facetrack.render.reconstruction import LEVELS
from facetrack.track.head import recorded_poses
from facetrack.track.tracker import FrameResult

HEAD_COLUMNS = ["head_pitch_deg", "head_yaw_deg", "head_roll_deg", "head_x_cm", "head_y_cm", "head_z_cm"]


def export_csv(rec: Recording, path: Path, head_frame: np.ndarray) -> None:
    """One row per frame with named columns: the recorded fields (the pose as the crop's camera sees it, which
    the replay draws), then the head pose in the source camera, as streams send it (facetrack.track.head;
    `head_frame`: the correspondence's canonical head frame)."""
    names = {"expression": rec.header["expression_names"], "quaternion": ["qw", "qx", "qy", "qz"],
             "translation": ["tx_cm", "ty_cm", "tz_cm"], "photo_base": ["photo_base"],
             "photo_final": ["photo_final"], "crop_box": ["crop_cx", "crop_cy", "crop_side"],
             "frame_size": ["frame_width", "frame_height"], "face": ["face_present"]}
    cols, blocks = ["timestamp", "frame"], [rec.timestamp[:, None], rec.frame_index[:, None].astype(float)]
    for name, arr in rec.values.items():
        cols += names.get(name, [f"{name}_{k}" for k in range(arr.shape[1])])
        blocks.append(arr)
    R, t = recorded_poses(rec, head_frame)
    cols += HEAD_COLUMNS
    blocks += [np.degrees(matrix_to_euler(torch.from_numpy(R)).numpy()).reshape(-1, 3), t]
    table = np.concatenate(blocks, axis=1) if len(rec) else np.zeros((0, len(cols)))
    try:
        np.savetxt(path, table, delimiter=",", header=",".join(cols), comments="", fmt="%.7g")
    except OSError as e:
        raise FacetrackError(f"cannot write {path}: {e.strerror or e}") from None


def export_obj_sequence(rec: Recording, model: MultiLevelModel, folder: Path) -> tuple[int, int]:
    """One OBJ per frame with a face (`frame_000123.obj`, the recording's frame index): the final level in the
    camera frame (cm), so head motion is in the meshes, with the reflectance as vertex colours. Returns
    (meshes written, frames left out for having no face)."""
    from facetrack.render.reconstruction import Needs, Reconstructor

    present = rec.present
    x = rec.params(model.layout)
    reconstruct = Reconstructor(model)
    tris = model.triangles.numpy()
    try:
        for k in np.flatnonzero(present):
            level = reconstruct(x[k], Needs(frozenset({"final"}))).levels["final"]
            write_obj(folder / f"frame_{int(rec.frame_index[k]):06d}.obj", level.v_cam, tris, level.albedo)
    except OSError as e:
        raise FacetrackError(f"cannot write into {folder}: {e.strerror or e}") from None
    return int(present.sum()), int((~present).sum())


def params_json(model: MultiLevelModel, r: FrameResult) -> dict:
    """The named parameters of a result, pose also in degrees, expressions by ARKit name."""
    p = r.recon.params
    out = {k: v.reshape(-1).tolist() for k, v in p.items()}
    out["alpha_exp"] = r.recon.expressions
    out["rotation_degrees"] = dict(zip(("pitch", "yaw", "roll"), r.recon.rotation_deg.tolist(), strict=True))
    return {"params": out, "photometric_error": r.photometric,
            "crop_box": {"cx": r.box.cx, "cy": r.box.cy, "side": r.box.side}, "layout": model.layout.table(),
            "units": {"trans": "cm", "rot": "radians", "rotation_degrees": "degrees"}}


def write_photo_outputs(dest: Path, model: MultiLevelModel, camera: Camera, raster: GLRasterizer, r: FrameResult,
                        rgb: np.ndarray) -> None:
    """params.json, landmarks.json, base.png, final.png, mask.png and mesh.obj of one photo (module docstring).
    `r` must hold both levels."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "params.json").write_text(json.dumps(params_json(model, r), indent=1))
    (dest / "landmarks.json").write_text(json.dumps({"landmarks_68": r.landmarks_image.tolist(),
                                                     "units": "input-image pixels, top-left corner origin"}))
    mask = None
    for name in LEVELS:
        pic, mask = overlay_on_image(raster, camera, r.recon.levels[name], model.face_triangles.numpy(), r.box, rgb)
        save_png(dest / f"{name}.png", pic)
    save_png(dest / "mask.png", np.repeat(to_uint8(mask)[..., None], 3, axis=2))
    final = r.recon.levels["final"]
    R = r.recon.rotation_matrix
    v_model = (final.v_cam - r.recon.params["trans"]) @ R  # back to the model frame: R^T (v - t)
    write_obj(dest / "mesh.obj", v_model, model.triangles.numpy(), final.albedo)
