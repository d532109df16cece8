"""Export a training run to a weights folder the app loads (see facetrack.net.weights).

    python -m train.export --run RUN --reflectance reflectance.npz --out weights/

Writes encoder.pt, correctives.pt (float16 when --half), reflectance.npz, encoder.onnx (checked against
torch on random crops), encoder.int8.onnx (calibrated and checked on the cache's validation crops),
curves.png, validation.png and model_card.md / model_card.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from facetrack.errors import FacetrackError
from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel
from facetrack.net.encoder import Encoder
from facetrack.net.weights import load_reflectance, load_weights, save_weights
from train.config import TrainConfig
from train.data import CropDataset
from train.plots import plot_curves, validation_renders
from train.quantize import cache_crops, evenly, write_int8_or_say


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def encoder_speed(bench_files: list[Path]) -> list[dict]:
    """Batch-1 encoder rows of `facetrack bench` JSON files, with the machine each ran on."""
    rows = []
    for path in bench_files:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise FacetrackError(f"cannot read bench file {path}: {e}") from None
        m = doc.get("machine", {})
        cpu = f"{m.get('cpu_count', '?')}-core CPU ({m.get('processor', '?')})"
        rows += [{"backend": r["backend"], "machine": m.get("cuda") if "cuda" in r["backend"] else cpu,
                  "ms": round(r["ms_per_frame"], 3), "hz": round(r["hz"])}
                 for r in doc.get("rows", []) if r["part"] == "encoder" and r["batch"] == 1]
    return rows


def export(run: Path, reflectance: Path, out: Path, model_file: Path | None = None, half: bool = True,
           renders: int = 6, bench_files: list[Path] | None = None) -> dict:
    ckpt_path = run / "ckpt_last.pt"
    if not ckpt_path.is_file():
        raise FacetrackError(f"no checkpoint in {run}")
    st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(st["cfg"])
    face = load_reflectance(FaceModel.load(model_file), reflectance)
    c = cfg.correctives
    model = MultiLevelModel(face, c.n_geometry, c.n_reflectance, c.kind)
    model.load_state_dict(st["model"])
    encoder = Encoder(model.layout, cfg.encoder)
    encoder.load_state_dict(st["encoder"])
    onnx_err = save_weights(out, encoder, model, c.kind, reflectance, half)

    # Load back exactly what the app loads, and draw its curves and validation faces.
    w = load_weights(out, face=FaceModel.load(model_file))
    plot_curves(run, out / "curves.png")
    run_cfg = yaml.safe_load((run / "config.yaml").read_text())
    cache = Path(run_cfg["cache"])
    val = CropDataset(cache, "val")
    if len(val):
        idx = evenly(len(val), renders)
        images = torch.stack([val[int(i)]["image"] for i in idx])
        w.model.float()
        (out / "validation.png").unlink(missing_ok=True)  # a skipped render must not leave an older one linked
        try:
            validation_renders(w.model, w.encoder.float(), images, out / "validation.png")
        except FacetrackError as e:  # a headless training machine without OpenGL: the weights still count
            print(f"export: validation renders skipped: {e}", file=sys.stderr)
    log = [ln.split(",") for ln in (run / "log.csv").read_text().splitlines()[1:]] if (run / "log.csv").exists() else []
    index = json.loads((cache / "index.json").read_text())
    card = {
        "date": time.strftime("%Y-%m-%d"), "git_commit": git_commit(), "encoder": cfg.encoder,
        "encoder_parameters": sum(p.numel() for p in encoder.parameters()),
        "correctives": dataclasses.asdict(c), "optimizer": dataclasses.asdict(cfg.optimizer),
        "batch_size": cfg.batch_size, "init": cfg.init, "augment": dataclasses.asdict(cfg.augment),
        "loss_weights": cfg.changed_weights(),
        "iterations": {"stage1": cfg.stage1_steps, "stage2": cfg.stage2_steps},
        "wall_time_s": float(log[-1][3]) if log else None, "device": cfg.device,
        "hardware": json.loads((run / "machine.json").read_text()) if (run / "machine.json").is_file() else None,
        "encoder_speed_batch1": encoder_speed(bench_files or []),
        "data": {"cache": str(cache), "accepted": index["counts"], "rejected": index["rejected"]},
        "reflectance": str(np.load(reflectance)["meta"]) if "meta" in np.load(reflectance) else "",
        "validation": st["val_history"][-1] if st["val_history"] else None,
        "validation_history": st["val_history"], "onnx_max_abs_diff": onnx_err,
        "validation_renders": (out / "validation.png").is_file(),
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=1))
    (out / "model_card.md").write_text(model_card_markdown(card))
    write_int8_or_say(out, model.layout, lambda: cache_crops(cache), "export")  # the app's encoder on a CPU
    return card


def model_card_markdown(card: dict) -> str:
    v = card["validation"] or {}
    first = next((h for h in card["validation_history"] if h["stage"] == 1), {})
    lines = [
        "# facetrack model card", "",
        f"- date: {card['date']}, git commit `{card['git_commit']}`",
        f"- encoder: `{card['encoder']}` ({card['encoder_parameters']:,} weights); correctives: {card['correctives']}",
        f"- schedule: stage 1 (base level) {card['iterations']['stage1']} steps, stage 2 (with correctives) "
        f"{card['iterations']['stage2']} steps, batch {card['batch_size']}, optimizer {card['optimizer']}",
        f"- started from: {card.get('init') or 'scratch'}; augmentation: {card.get('augment') or 'none'}; "
        f"loss weights changed from the defaults: {card.get('loss_weights') or 'none'}",
        f"- device: {card['device']}; wall time {card['wall_time_s']} s; hardware: {card.get('hardware') or '-'}",
        f"- data: {card['data']['accepted']} accepted crops from `{card['data']['cache']}`; "
        f"rejected {card['data']['rejected']}",
        f"- base reflectance model: {card['reflectance']}",
        f"- ONNX export max |onnx - torch| = {card['onnx_max_abs_diff']:.2e}", "",
        "## Validation (held-out split)", "",
        "| figure | first validation | final | paper |", "| --- | --- | --- | --- |",
        f"| photometric error, base level | {first.get('photo_base', '-')} | {v.get('photo_base', '-')} | 0.092 |",
        f"| photometric error, final level | {first.get('photo_final', '-')} | {v.get('photo_final', '-')} | 0.072 |",
        f"| landmark error (crop px, 240 crop) | {first.get('landmark_px', '-')} | {v.get('landmark_px', '-')} | - |",
        "", "Photometric error: mean over visible vertices of the Euclidean RGB distance, RGB in [0, 1].", "",
    ]
    if speed := card.get("encoder_speed_batch1"):
        lines += ["## Encoder speed, batch 1 (`facetrack bench`; FML: 4 ms, 250 Hz)", "",
                  "| backend | machine | ms per frame | Hz |", "| --- | --- | --- | --- |",
                  *[f"| {r['backend']} | {r['machine']} | {r['ms']} | {r['hz']} |" for r in speed], ""]
    lines += [
        "![training curves](curves.png)", "",
    ]
    if card.get("validation_renders", True):
        lines += ["![validation: input, base, final, albedo, error](validation.png)", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--reflectance", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("weights"))
    ap.add_argument("--model", type=Path)
    ap.add_argument("--full-precision", action="store_true", help="keep correctives in float32")
    ap.add_argument("--bench", type=Path, action="append", default=[],
                    help="a `facetrack bench` JSON file whose batch-1 encoder rows go into the card (repeatable)")
    args = ap.parse_args(argv)
    try:
        card = export(args.run, args.reflectance, args.out, args.model, half=not args.full_precision,
                      bench_files=args.bench)
    except FacetrackError as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: validation {card['validation']}, onnx diff {card['onnx_max_abs_diff']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
