"""Grow the reflectance corrective space from what the fitted final level still leaves on training photos.

    python -m train.correctives --weights weights --images PHOTOS --out weights2 [--photos 800] [--modes 100]

The trained correctives (learned with the encoder by the photometric loss) carry about a hundred modes on a
2-core CPU; the paper uses 500. Here the next modes are learned in closed form from the same photometric
objective: each training photo (`--split train` of `eval images`, so none of the evaluation photos) goes
through the app (landmark fit, then lighting, base reflectance and the existing correctives fitted to the
image), and what remains, image colour over shading minus the final level's reflectance, is sampled on the
vertices seen (z-buffer, not grazing, not dark, inside the face's photometric mask). A PCA that fills the gaps
iteratively (`train.reflectance.pca_with_gaps`) turns these residuals into new corrective modes: their mean,
then `--modes - 1` principal directions. The encoder keeps all its outputs and says 0 for the new modes, so
the encoder alone is unchanged; the app's appearance fit (`facetrack.track.appearance`) uses all of them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facetrack import paths
from facetrack.errors import FacetrackError
from facetrack.evaluation.images import image_files
from facetrack.model.facemodel import FaceModel
from facetrack.model.layout import BLOCKS, ParamLayout
from facetrack.model.multilevel import LinearCorrective, MultiLevelModel
from facetrack.net.encoder import Encoder
from facetrack.net.weights import Weights, load_weights, save_weights
from facetrack.render.formation import View, shade
from facetrack.render.occlusion import zbuffer_visible
from facetrack.render.raster_gl import GLRasterizer
from facetrack.render.reconstruction import LEVELS, Needs
from facetrack.track.photos import reconstructions
from facetrack.track.tracker import Tracker
from train.quantize import CALIBRATION_CROPS, evenly, write_int8_or_say
from train.reflectance import observed_albedo, pca_with_gaps

DOCS = ("README.md", "model_card.md", "model_card.json", "curves.png", "validation.png")


def residual_samples(tracker: Tracker, files: list[Path], progress: bool = True,
                     crops: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, V, 3) reflectance residuals of the fitted final level and (N, V) validity, one row per photo found;
    the face crops go into `crops` when given (to calibrate the 8-bit encoder)."""
    model, cam = tracker.model, tracker.camera
    raster = GLRasterizer.for_camera(cam, 1)
    mask = model.face_photo_mask > 0
    out_r, out_v = [], []
    try:
        for _, _, r in tqdm(reconstructions(tracker, files, Counter(), Needs(frozenset(LEVELS))), total=len(files),
                            desc="residual reflectance", disable=not progress):
            lv = r.recon.levels["final"]
            img = torch.from_numpy(r.face.crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
            with torch.inference_mode():
                geometry = View(*(torch.from_numpy(a)[None] for a in (lv.v_cam, lv.normal, lv.uv)), None, None, None,
                                torch.from_numpy(lv.visible)[None])
                vw = shade(geometry, torch.from_numpy(lv.albedo)[None], torch.from_numpy(r.recon.params["gamma"])[None])
                seen = zbuffer_visible(raster, cam, vw.v_cam, model.triangles)
                albedo, ok = (a[0].numpy() for a in observed_albedo(img, vw, seen, mask))
            out_r.append((albedo - lv.albedo).astype(np.float32))
            if crops is not None:
                crops.append(r.face.crop)
            out_v.append(ok)
    finally:
        raster.release()
    if len(out_r) < 2:
        raise FacetrackError("fewer than 2 photos with a face: no residuals to learn correctives from")
    return np.stack(out_r), np.stack(out_v)


def new_modes(residuals: np.ndarray, valid: np.ndarray, modes: int) -> np.ndarray:
    """(modes, V * 3): the residuals' mean, then modes - 1 principal directions scaled by their SD; zero on
    vertices no photo showed (the gap filling gives them the average residual, which means nothing there)."""
    mean, basis, _ = pca_with_gaps(residuals.astype(np.float64), valid, max(1, modes - 1))
    out = np.concatenate([mean[None], basis])[:modes] * valid.any(0)[None, :, None]
    return out.reshape(len(out), -1).astype(np.float32)


def grow(weights: Weights, modes: np.ndarray) -> tuple[Encoder, MultiLevelModel]:
    """The weights with `modes` appended to the reflectance correctives: every block of the encoder's output
    keeps its values (the head's new rows are zero, so the new coefficients start at 0)."""
    old = weights.model
    if not isinstance(old.refl_corrective, LinearCorrective):
        raise FacetrackError("only linear correctives can grow")
    lay = old.layout
    layout = ParamLayout(lay.n_id, lay.n_exp, lay.n_refl, lay.n_cg, lay.n_cr + len(modes))
    model = MultiLevelModel(weights.face, layout.n_cg, layout.n_cr, "linear")
    model.geo_corrective.load_state_dict(old.geo_corrective.state_dict())
    with torch.no_grad():
        model.refl_corrective.basis.copy_(torch.cat([old.refl_corrective.basis, torch.from_numpy(modes)]))
    enc = Encoder(layout, weights.encoder.backbone_name)
    enc.backbone.load_state_dict(weights.encoder.backbone.state_dict())
    src, dst = lay.slices(), layout.slices()
    with torch.no_grad():
        enc.head.weight.zero_()
        enc.head.bias.zero_()
        for name in BLOCKS:
            n = src[name].stop - src[name].start
            rows = slice(dst[name].start, dst[name].start + n)
            enc.head.weight[rows] = weights.encoder.head.weight[src[name]]
            enc.head.bias[rows] = weights.encoder.head.bias[src[name]]
    return enc.eval(), model.eval()


def build(weights_dir: Path, images: Path, out: Path, photos: int, modes: int, landmarker: Path,
          model_file: Path | None = None, progress: bool = True) -> dict:
    weights = load_weights(weights_dir, FaceModel.load(model_file))
    files = image_files(images, "train", photos)
    if not files:
        raise FacetrackError(f"no training-split photos in {images}")
    tracker = Tracker(weights, landmarker=landmarker)
    crops: list[np.ndarray] = []
    residuals, valid = residual_samples(tracker, files, progress, crops)
    enc, model = grow(weights, new_modes(residuals, valid, modes))
    err = save_weights(out, enc, model, "linear", weights_dir / "reflectance.npz")
    for name in DOCS:  # the model card and its pictures describe the trained part, which is unchanged
        if (weights_dir / name).is_file() and (weights_dir / name).resolve() != (out / name).resolve():
            shutil.copyfile(weights_dir / name, out / name)
    info = {"photos": int(len(residuals)), "seen_per_vertex": round(float(valid.mean()), 3),
            "reflectance_correctives": model.layout.n_cr, "new_modes": modes, "onnx_max_abs_diff": err}
    card = out / "model_card.json"
    if card.is_file():
        doc = json.loads(card.read_text())
        doc["correctives"] = {**doc.get("correctives", {}), "n_reflectance": model.layout.n_cr}
        doc.setdefault("grown", []).append({**info, "command": "python -m train.correctives", "images": str(images)})
        card.write_text(json.dumps(doc, indent=1))
    if (out / "model_card.md").is_file():
        with (out / "model_card.md").open("a") as f:
            f.write(f"- Reflectance correctives grown by `python -m train.correctives` ({info['photos']} training "
                    f"photos of {images.name}): {modes} modes appended, {model.layout.n_cr} in all.\n")
    # the 8-bit encoder again: the grown encoder has new outputs
    write_int8_or_say(out, model.layout, lambda: np.stack(crops)[evenly(len(crops), CALIBRATION_CROPS)],
                      "correctives")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.correctives", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="weights folder to grow (default: the app's)")
    ap.add_argument("--images", required=True, help="photo folder (its training split is used)")
    ap.add_argument("--out", required=True, help="output weights folder (may be --weights itself)")
    ap.add_argument("--photos", type=int, default=800)
    ap.add_argument("--modes", type=int, default=100)
    ap.add_argument("--landmarker", default=None, help="face_landmarker.task (default $FACETRACK_LANDMARKER)")
    ap.add_argument("--model", default=None, help="face model file (default: the built one)")
    args = ap.parse_args(argv)
    try:
        landmarker = paths.landmarker_model(args.landmarker)
        if landmarker is None:
            raise FacetrackError("the residuals come from the app's fit: give --landmarker or $FACETRACK_LANDMARKER")
        info = build(paths.weights_dir(args.weights), Path(args.images), Path(args.out), args.photos, args.modes,
                     landmarker, Path(args.model) if args.model else None)
    except FacetrackError as e:
        print(f"correctives: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
