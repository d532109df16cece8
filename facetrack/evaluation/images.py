"""`facetrack eval images DIR`: how well the reconstruction explains real photos.

Per photo (faces found by the app's own detector and landmarks, on the 240x240 crop):
- photometric error as in the paper: each level is rasterized, and over its visible pixels (full coverage,
  inside the model's photometric mask, so rims and mesh holes do not count) the Euclidean RGB distance
  between rendering and photo, channels in [0, 1]; the per-photo mean, summarized as mean and SD over
  photos. `face` counts the narrow face area (forehead to chin, like the paper's face region), `full` the
  whole model area (ears, neck, hairline); `vertex_mean` is the point-based figure training logs;
- identity similarity: cosine of dlib's 128-D face-recognition embeddings of the photo and of the level
  rendered over it, and the share dlib calls the same person (distance < 0.6). For context, the same
  figures for the photo against its mirror image (same person, other pixels) and against the next photo
  in the set (a different person);
- the share of photos with a face found.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.evaluation.metrics import photometric_pixels
from facetrack.evaluation.report import share, skipped, stats
from facetrack.evaluation.split import image_group, is_val
from facetrack.io.sources import IMAGE_EXTS
from facetrack.model.facemodel import NARROW_FACE
from facetrack.render.images import heat_colors, label, save_png, to_uint8
from facetrack.render.raster_gl import GLRasterizer
from facetrack.render.reconstruction import Level, Needs
from facetrack.track.photos import reconstructions
from facetrack.track.tracker import FrameResult, Tracker
from facetrack.vision.identity import FaceEmbedder, cosine, same_person

FULL_COVERAGE = 0.999  # pixels at silhouette edges mix face and background: not counted
EXAMPLES = 6  # photos shown in examples.png
ERROR_VMAX = 0.5  # top of the heat map's scale


def image_files(folder: Path, split: str = "all", limit: int | None = None) -> list[Path]:
    """Photos below `folder`, sorted; `split` 'val' or 'train' keeps that side of train.prepare's split."""
    if not folder.is_dir():
        raise FacetrackError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if split != "all":
        want = split == "val"
        files = [p for p in files if is_val(image_group(folder.name, str(p.relative_to(folder)))) == want]
    return files[:limit] if limit else files


def render_level(raster: GLRasterizer, tracker: Tracker, level: Level
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(240, 240, 3) rendering, its coverage, and per region the pixels that count for the photometric
    error: 'face' (the narrow face area, as the paper's face region) and 'full' (the whole model area:
    ears, neck and the forehead up to the hairline too), both inside the photometric mask."""
    mask = tracker.model.photo_mask.numpy()
    narrow = (np.arange(len(mask)) < NARROW_FACE).astype(np.float32)
    clip = tracker.camera.clip(torch.from_numpy(level.v_cam)).numpy()
    attrs = np.concatenate([level.color, mask[:, None], (mask * narrow)[:, None]], axis=1)
    out, cov = raster.render(clip, tracker.weights.face.triangles, attrs)
    out = out / np.maximum(cov, 1e-6)[..., None]
    full = cov >= FULL_COVERAGE
    return out[..., :3], cov, {"face": full & (out[..., 4] > 0.5), "full": full & (out[..., 3] > 0.5)}


class _Identity:
    """Embeddings for one photo's crop, its mirror image and its renderings, in the crop's landmark box."""

    def __init__(self) -> None:
        self.embed = FaceEmbedder()

    def box(self, r: FrameResult) -> tuple[float, float, float, float]:
        lo, hi = r.face.landmarks.min(0), r.face.landmarks.max(0)
        return float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])

    def photo(self, r: FrameResult) -> tuple[np.ndarray, np.ndarray]:
        x, y, w, h = self.box(r)
        crop = r.face.crop
        mirrored = np.ascontiguousarray(crop[:, ::-1])
        return self.embed(crop, (x, y, w, h)), self.embed(mirrored, (crop.shape[1] - x - w, y, w, h))


def eval_images(tracker: Tracker, files: list[Path], levels: tuple[str, ...] = ("base", "final"),
                identity: bool = True, examples: Path | None = None) -> dict:
    raster = GLRasterizer.for_camera(tracker.camera, 2)
    ident = _Identity() if identity else None
    photo = {lv: {"face": [], "full": []} for lv in levels}
    vertex_photo = {lv: [] for lv in levels}
    cos = {lv: [] for lv in levels}
    same = {lv: [] for lv in levels}
    mirror_cos, mirror_same, other_cos, other_same = [], [], [], []
    pixels = 0
    missing = Counter()
    previous_embedding = None
    rows = []
    try:
        for _, _, r in reconstructions(tracker, files, missing, Needs(frozenset(levels), photometric=True)):
            crop = r.face.crop.astype(np.float32) / 255.0
            if ident:
                e_in, e_mirror = ident.photo(r)
                mirror_cos.append(cosine(e_in, e_mirror))
                mirror_same.append(same_person(e_in, e_mirror))
                if previous_embedding is not None:
                    other_cos.append(cosine(e_in, previous_embedding))
                    other_same.append(same_person(e_in, previous_embedding))
                previous_embedding = e_in
            row = [to_uint8(crop)]
            for lv in levels:
                rgb, cov, regions = render_level(raster, tracker, r.recon.levels[lv])
                for region, counted in regions.items():
                    err = photometric_pixels(rgb, crop, counted)
                    photo[lv][region].append(float(err.mean()) if err.size else float("nan"))
                vertex_photo[lv].append(r.photometric[lv])
                counted = regions["face"]
                pixels += int(counted.sum())
                over = rgb * cov[..., None] + (1 - cov[..., None]) * crop
                if ident:
                    e_r = ident.embed(to_uint8(over), ident.box(r))
                    cos[lv].append(cosine(e_in, e_r))
                    same[lv].append(same_person(e_in, e_r))
                if examples is not None and len(rows) < EXAMPLES:
                    heat = np.zeros_like(crop)
                    heat[counted] = heat_colors(np.linalg.norm(rgb - crop, axis=-1)[counted], ERROR_VMAX)
                    row += [label(to_uint8(over), lv), label(to_uint8(heat), f"error {photo[lv]['face'][-1]:.3f}")]
            if examples is not None and len(rows) < EXAMPLES:
                rows.append(np.hstack(row))
    finally:
        raster.release()
    if examples is not None and rows:
        save_png(examples, np.vstack(rows))
    found = len(next(iter(vertex_photo.values()), []))
    report = {"photos": len(files), "found": found, "found_share": found / max(len(files), 1),
              "photometric_error": {lv: {"face_mean": stats(photo[lv]["face"]).get("mean"),
                                         "face_sd": stats(photo[lv]["face"]).get("sd"),
                                         "full_mean": stats(photo[lv]["full"]).get("mean"),
                                         "full_sd": stats(photo[lv]["full"]).get("sd"),
                                         "vertex_mean": stats(vertex_photo[lv]).get("mean")} for lv in levels},
              "pixels_counted": pixels, "skipped": skipped(missing)}
    if ident:
        report["identity_cosine"] = {lv: stats(cos[lv]).get("mean") for lv in levels}
        report["identity_same_person_share"] = {lv: share(same[lv]) for lv in levels}
        report["identity_context"] = {
            "photo_vs_itself_cosine": 1.0,
            "photo_vs_mirror_cosine": stats(mirror_cos).get("mean"),
            "photo_vs_mirror_same_person_share": share(mirror_same),
            "photo_vs_other_person_cosine": stats(other_cos).get("mean"),
            "photo_vs_other_person_same_person_share": share(other_same)}
    return report
