"""`facetrack eval`: accuracy figures that anyone can reproduce from the README.

synthetic: a fixed-seed set of synthetic faces (facetrack.synth), cached under $FACETRACK_HOME/eval/;
per face, the mean and median per-vertex error in millimetres on the narrow face area (ICT vertices 0-6705)
after similarity alignment, for each level, and the head-rotation error in degrees. Faces the pipeline
does not find are counted, not fatal. Writes report.json and report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from facetrack import paths
from facetrack.metrics import aligned_vertex_error_mm, rotation_error_deg
from facetrack.render.camera import euler_to_matrix
from facetrack.synth import SynthConfig, generate
from facetrack.tracker import Tracker

NARROW_FACE = 6706  # ICT narrow face area: vertices 0-6705


def synthetic_set(tracker: Tracker, n: int, seed: int, backgrounds: Path | None) -> Path:
    folder = paths.home() / "eval" / f"synthetic-seed{seed}-n{n}"
    if not (folder / "synth.npz").is_file():
        generate(tracker.weights.face, folder, n, backgrounds, SynthConfig(seed=seed))
    return folder


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, np.float64)
    return {"mean": float(a.mean()), "median": float(np.median(a)), "sd": float(a.std())} if len(a) else {}


@torch.no_grad()
def eval_synthetic(tracker: Tracker, n: int = 300, seed: int = 0, backgrounds: Path | None = None,
                   levels: tuple[str, ...] = ("base", "final")) -> dict:
    folder = synthetic_set(tracker, n, seed, backgrounds)
    z = np.load(folder / "synth.npz")
    rot_at, _ = {name: (o, size) for name, o, size in json.loads((folder / "meta.json").read_text())["layout"]}["rot"]
    model = tracker.model
    errors = {lv: {"mean_mm": [], "median_mm": []} for lv in levels}
    pose, missed = [], 0
    for i in range(n):
        img = cv2.imread(str(folder / "images" / f"{i:06d}.png"))
        tracker.reset()
        r = tracker(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), pad=0.25)
        if r is None:
            missed += 1
            continue
        p = model.params(torch.from_numpy(r.x)[None])
        lv = model(p)
        gt = z["vertices"][i][:NARROW_FACE].astype(np.float64)
        for name in levels:
            v = (lv.v_base if name == "base" else lv.v_final)[0, :NARROW_FACE].numpy().astype(np.float64)
            mean, median = aligned_vertex_error_mm(v, gt)
            errors[name]["mean_mm"].append(mean)
            errors[name]["median_mm"].append(median)
        gt_rot = torch.from_numpy(z["params"][i : i + 1, rot_at : rot_at + 3]).double()
        pose.append(rotation_error_deg(euler_to_matrix(p["rot"].double())[0].numpy(),
                                       euler_to_matrix(gt_rot)[0].numpy()))
    return {"set": str(folder), "faces": n, "found": n - missed, "seed": seed,
            "vertex_error_mm": {name: {"mean": _stats(e["mean_mm"]).get("mean"),
                                       "median": _stats(e["median_mm"]).get("median")} for name, e in errors.items()},
            "rotation_error_deg": _stats(pose)}


def write_report(report: dict, out: Path, title: str) -> None:
    """report.json, and report.md with one table row per figure."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    rows = []

    def walk(prefix: str, node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix} {k}".strip(), v)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            rows.append(f"| {prefix} | {node:.4g} |")

    walk("", report)
    (out / "report.md").write_text(f"# {title}\n\n| figure | value |\n| --- | --- |\n" + "\n".join(rows) + "\n")
