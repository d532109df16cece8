"""`facetrack eval synthetic`: geometry and pose against exact ground truth.

A fixed-seed set of synthetic faces (facetrack.render.synthetic), rendered once and cached under
$FACETRACK_HOME/eval/, goes through the whole pipeline (detection, landmarks, crop, encoder). Per face:
the mean and median per-vertex error in millimetres on the narrow face area (ICT vertices 0-6705) after
similarity alignment (rotation, translation, isotropic scale, as in the paper), for each level, and the
head-rotation error in degrees (geodesic, and per Euler angle). For context, on the same faces: the error
of the plain mean face (no identity, no expression), the rotation error of always answering "frontal",
and the NME of the detected landmarks against the rendered ones. The backgrounds are real photos, often
with a face of their own: when the detector picks that one (landmarks far from the rendered face's),
the face counts as not found.

Per expression it also reports how much of the shape the dense landmarker shows (`landmarker_gain`): the fit
can only read what the landmarks move, so a shape MediaPipe shows at a third is read at a third or less,
whatever its geometry. Those faces are drawn from another seed and rendered over plain gradients, one shape
at a time.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from facetrack import paths
from facetrack.evaluation.metrics import aligned_vertex_error_mm, angle_errors_deg, nme_bbox, rotation_error_deg
from facetrack.evaluation.report import skipped, stats
from facetrack.model.facemodel import NARROW_FACE
from facetrack.render.camera import CROP_SIZE, Camera, euler_to_matrix
from facetrack.render.images import to_uint8
from facetrack.render.raster_gl import GLRasterizer
from facetrack.render.reconstruction import Needs
from facetrack.render.synthetic import RENDER_VERSION, SynthConfig, SyntheticFaces, generate
from facetrack.track.photos import PHOTO_PAD, reconstructions
from facetrack.track.tracker import Tracker


def synthetic_set(tracker: Tracker, n: int, seed: int, backgrounds: Path | None) -> Path:
    """The cached set for (n, seed), rendered on first use."""
    folder = paths.home() / "eval" / f"synthetic-v{RENDER_VERSION}-seed{seed}-n{n}"
    if not (folder / "synth.npz").is_file():
        generate(tracker.weights.face, folder, n, backgrounds, SynthConfig(seed=seed))
    return folder

WRONG_FACE_NME = 0.25  # detected landmarks this far from the rendered face's (NME) belong to another face
GAIN_WEIGHT = 0.6  # each shape's weight in the renders that measure the landmarker's gain
GAIN_SEED = 1000  # added to the set's seed: those faces are not the set's


def landmarker_gain(tracker: Tracker, faces: int, seed: int) -> dict[str, dict[str, float | None]]:
    """Per expression: how far the dense landmarker's 468 points move for that shape, as a share of how far the
    model's own points (the correspondence) move ("gain", least squares over the faces: 1 = all of it), and the
    correlation of the two motions ("r": whether it moves the right points). Each face (identity, pose,
    lighting, albedo, eyes drawn as in the set, over a plain gradient) is rendered neutral and with one shape
    at GAIN_WEIGHT; a face the landmarker misses in either picture is left out. Empty without MediaPipe."""
    if tracker.dense is None or tracker.fitter is None or faces <= 0:
        return {}
    gen = SyntheticFaces(tracker.weights.face, None, SynthConfig(seed=seed + GAIN_SEED))
    camera, raster = Camera(CROP_SIZE, CROP_SIZE), GLRasterizer(CROP_SIZE, CROP_SIZE, supersample=2)
    corr, names = tracker.fitter.corr, list(gen.model.exp_names)
    moved = {n: ([], []) for n in names}  # per shape: the model points' and the landmarks' motions

    def landmarks(rgb: np.ndarray) -> np.ndarray | None:  # as a photo is looked at (the set's faces too)
        tracker.reset()
        dense = tracker.find(to_uint8(rgb), pad=PHOTO_PAD).dense
        return None if dense is None else dense.points[: len(corr.tri)]

    try:
        with torch.no_grad():
            for _ in range(faces):
                p = gen.params()
                p["alpha_exp"].zero_()
                albedo, eyes, bg = torch.from_numpy(gen.albedo())[None], gen.eyes(), gen.background(CROP_SIZE)
                rgb, vw = gen.render(p, albedo, eyes, raster, camera, bg)
                model0, seen0 = corr.points(vw.uv[0].numpy()), landmarks(rgb)
                if seen0 is None:
                    continue
                for k, name in enumerate(names):
                    q = {key: v.clone() for key, v in p.items()}
                    q["alpha_exp"][0, k] = GAIN_WEIGHT
                    rgb, vw = gen.render(q, albedo, eyes, raster, camera, bg)
                    seen = landmarks(rgb)
                    if seen is not None:
                        moved[name][0].append((corr.points(vw.uv[0].numpy()) - model0).ravel())
                        moved[name][1].append((seen - seen0).ravel())
    finally:
        raster.release()
    out = {}
    for name, (model_motion, seen_motion) in moved.items():
        if not model_motion:
            out[name] = {"gain": None, "r": None}
            continue
        a, b = np.concatenate(model_motion), np.concatenate(seen_motion)
        out[name] = {"gain": float(a @ b / (a @ a)), "r": float(np.corrcoef(a, b)[0, 1])}
    return out


def eval_synthetic(tracker: Tracker, n: int = 300, seed: int = 0, backgrounds: Path | None = None,
                   levels: tuple[str, ...] = ("base", "final"), gain_faces: int = 20) -> dict:
    folder = synthetic_set(tracker, n, seed, backgrounds)
    z = np.load(folder / "synth.npz")
    rot_at, _ = {name: (o, size) for name, o, size in json.loads((folder / "meta.json").read_text())["layout"]}["rot"]
    model = tracker.model
    errors = {lv: {"mean": [], "median": []} for lv in levels}
    mean_face = model.mean[:NARROW_FACE].double().numpy()
    reference, dlib_nme, frontal = [], [], []
    geodesic, per_axis, missing = [], [], Counter()
    exp_at = {name: (o, size) for name, o, size in json.loads((folder / "meta.json").read_text())["layout"]}[
        "alpha_exp"][0]
    exp_errors, exp_truth = [], []
    files = [folder / "images" / f"{i:06d}.png" for i in range(n)]
    needs = Needs(frozenset(levels))
    for path, _, r in reconstructions(tracker, files, missing, needs):
        i = int(path.stem)
        detected = nme_bbox(r.face.image_landmarks, z["landmarks"][i].astype(np.float64))
        if detected > WRONG_FACE_NME:
            missing["another face found (the background photo's)"] += 1
            continue
        dlib_nme.append(detected)
        gt = z["vertices"][i][:NARROW_FACE].astype(np.float64)
        for name in levels:  # camera-frame vertices: the similarity alignment removes the pose
            v = r.recon.levels[name].v_cam[:NARROW_FACE].astype(np.float64)
            mean, median = aligned_vertex_error_mm(v, gt)
            errors[name]["mean"].append(mean)
            errors[name]["median"].append(median)
        reference.append(aligned_vertex_error_mm(mean_face, gt)[0])
        gt_rot = z["params"][i, rot_at : rot_at + 3].astype(np.float64)
        pred_rot = r.recon.params["rot"].astype(np.float64)
        truth = z["params"][i, exp_at : exp_at + model.layout.n_exp].astype(np.float64)
        exp_errors.append(np.abs(r.recon.params["alpha_exp"] - truth))
        exp_truth.append(truth)
        geodesic.append(rotation_error_deg(euler_to_matrix(torch.from_numpy(pred_rot)).numpy(),
                                           euler_to_matrix(torch.from_numpy(gt_rot)).numpy()))
        per_axis.append(angle_errors_deg(np.degrees(pred_rot), np.degrees(gt_rot)))
        frontal.append(rotation_error_deg(np.eye(3), euler_to_matrix(torch.from_numpy(gt_rot)).numpy()))
    axes = np.asarray(per_axis).reshape(-1, 3)
    return {"faces": n, "found": len(geodesic), "seed": seed,
            "vertex_error_mm": {name: {"mean": stats(e["mean"]).get("mean"),
                                       "median": stats(e["median"]).get("median"),
                                       "sd": stats(e["mean"]).get("sd")} for name, e in errors.items()},
            "reference_mean_face_error_mm": stats(reference).get("mean"),
            "reference_dlib_nme": stats(dlib_nme).get("mean"),
            "rotation_error_deg": stats(geodesic),
            "reference_frontal_rotation_error_deg": stats(frontal).get("mean"),
            "angle_mae_deg": {k: stats(axes[:, j]).get("mean") for j, k in enumerate(("pitch", "yaw", "roll"))},
            "expression_recovery": expression_recovery(model.exp_names, exp_errors, exp_truth, tracker,
                                                       landmarker_gain(tracker, gain_faces, seed)),
            "front_end": tracker.front_end, "skipped": skipped(missing)}


def expression_recovery(names: list[str], errors: list[np.ndarray], truth: list[np.ndarray], tracker: Tracker,
                        gain: dict[str, dict[str, float | None]] | None = None) -> dict:
    """Per shape: mean absolute error of the recovered weight over all faces, the same over the faces where
    the shape was active (true weight > 0.1), how often it was, how well landmarks could observe it (pixels of
    model-point motion per unit weight; only with the dense fit) and how much of that the landmarker shows
    (landmarker_gain)."""
    if not errors:
        return {}
    e, t = np.asarray(errors), np.asarray(truth)
    seen = tracker.fitter.observability() if tracker.fitter is not None else {}
    out = {}
    for k, name in enumerate(names):
        active = t[:, k] > 0.1
        out[name] = {"mae": float(e[:, k].mean()), "mae_when_active": float(e[active, k].mean()) if active.any()
                     else None, "active_faces": int(active.sum()), "observability_px": seen.get(name),
                     "landmarker_gain": (gain or {}).get(name, {}).get("gain"),
                     "landmarker_r": (gain or {}).get(name, {}).get("r")}
    return {"per_shape": out, "mae_all": float(e.mean()),
            "mae_when_active": float(e[t > 0.1].mean()) if (t > 0.1).any() else None}
