"""`facetrack reconstruct` and `facetrack run --no-gui`: reconstruction without a window.

reconstruct writes, per image, into OUT/<image stem>/:
  params.json   named parameter blocks, pose in degrees, expressions by ARKit name, photometric errors
  landmarks.json the 68 projected final-level landmarks in input-image pixels
  base.png, final.png  the levels rendered over the input image; mask.png  the face coverage
  mesh.obj      final level, model frame (cm), with reflectance as vertex colours
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.model.obj import write_obj
from facetrack.render.images import draw, save_png, to_uint8
from facetrack.render.raster_gl import GLRasterizer
from facetrack.sources import open_source
from facetrack.stream.recording import Recorder
from facetrack.tracker import FrameResult, Tracker, crop_box_json


def params_json(tracker: Tracker, r: FrameResult) -> dict:
    p = tracker.model.params(torch.from_numpy(r.x)[None])
    out = {k: v[0].tolist() for k, v in p.items()}
    out["gamma"] = p["gamma"][0].reshape(-1).tolist()
    out["alpha_exp"] = dict(zip(tracker.model.exp_names, p["alpha_exp"][0].tolist(), strict=True))
    out["rotation_degrees"] = dict(zip(("pitch", "yaw", "roll"), np.degrees(p["rot"][0].numpy()).tolist(),
                                       strict=True))
    return {"params": out, "photometric_error": {"base": r.photo_base, "final": r.photo_final},
            "crop_box": crop_box_json(r.face.box), "layout": tracker.model.layout.table(),
            "units": {"trans": "cm", "rot": "radians", "rotation_degrees": "degrees"}}


def overlay(raster: GLRasterizer, tracker: Tracker, r: FrameResult, rgb: np.ndarray, level: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """The level drawn over the whole input image (rendered in the crop, warped back), and its coverage."""
    vw = r.base if level == "base" else r.final
    crop_rgb, cov = draw(raster, tracker.camera, vw, tracker.weights.face.triangles, 0, None)
    h, w = rgb.shape[:2]
    inv = cv2.invertAffineTransform(r.face.box.affine())
    big = cv2.warpAffine(crop_rgb * cov[..., None], inv, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(cov, inv, (w, h), flags=cv2.INTER_LINEAR)
    return big + (1 - mask[..., None]) * rgb.astype(np.float32) / 255.0, mask


def reconstruct(tracker: Tracker, images: list[Path], out: Path) -> int:
    """Returns the number of images with a face; images without one are reported, not fatal."""
    raster = GLRasterizer(240, 240, supersample=2)
    done = 0
    for path in images:
        img = cv2.imread(str(path))
        if img is None:
            print(f"{path}: unreadable image, skipped")
            continue
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        tracker.reset()
        r = tracker(rgb, pad=0.25)
        if r is None:
            print(f"{path}: no face found")
            continue
        dest = out / path.stem
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "params.json").write_text(json.dumps(params_json(tracker, r), indent=1))
        (dest / "landmarks.json").write_text(json.dumps({"landmarks_68": r.landmarks_image.tolist(),
                                                         "units": "input-image pixels, top-left corner origin"}))
        for level in ("base", "final"):
            pic, mask = overlay(raster, tracker, r, rgb, level)
            save_png(dest / f"{level}.png", pic)
        save_png(dest / "mask.png", np.repeat(to_uint8(mask)[..., None], 3, axis=2))
        write_obj(dest / "mesh.obj", tracker.model(tracker.model.params(torch.from_numpy(r.x)[None])).v_final[0]
                  .detach().numpy(), tracker.weights.face.triangles, r.final.albedo[0].detach().numpy())
        print(f"{path}: photometric base {r.photo_base:.4f} final {r.photo_final:.4f} -> {dest}")
        done += 1
    raster.release()
    return done


def run_headless(tracker: Tracker, source: str, record: Path | None, max_frames: int | None = None) -> dict:
    """Process a source as fast as possible; print progress and FPS; return the figures."""
    frames = open_source(source)
    rec = Recorder(record, tracker.model.layout, tracker.model.exp_names, source) if record else None
    n = found = 0
    stage = {"detect_landmarks": 0.0, "encoder": 0.0, "model": 0.0}
    t0 = time.perf_counter()
    try:
        for stamp, index, rgb in frames:
            r = tracker(rgb)
            n += 1
            if r is not None:
                found += 1
                for k, v in r.ms.items():
                    stage[k] += v
                if rec:
                    rec.write(stamp, index, r.x, r.photo_base, r.photo_final)
            if max_frames and n >= max_frames:
                break
    finally:
        if rec:
            rec.close()
    wall = time.perf_counter() - t0
    if n == 0:
        raise FacetrackError(f"no frames processed from {source}")
    figures = {"frames": n, "faces": found, "fps": n / wall, "wall_s": wall,
               "ms_per_frame": {k: v / max(found, 1) for k, v in stage.items()},
               "backend": tracker.backend.name}
    print(f"{n} frames, {found} with a face, {figures['fps']:.1f} FPS ({tracker.backend.name}); ms per frame: "
          + ", ".join(f"{k} {v:.1f}" for k, v in figures["ms_per_frame"].items()))
    return figures
