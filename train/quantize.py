"""Write the 8-bit encoder (`encoder.int8.onnx`) of a weights folder, calibrated on a cache's held-out crops.

    python -m train.quantize --weights weights --cache CACHE [--crops 200]

`train.export` and `train.correctives` do this themselves; this command is for a folder they did not write,
or to redo it. Half of the crops calibrate the activations' 8-bit ranges, the other half check that every
output block stays within `facetrack.net.weights.QUANT_TOLERANCE` of the float encoder (the figures printed
and kept in model_card.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facetrack import paths
from facetrack.errors import FacetrackError
from facetrack.model.facemodel import FaceModel
from facetrack.model.layout import ParamLayout
from facetrack.net.weights import QUANT_MIN_CROPS, load_weights, quantize_onnx
from train.data import CropDataset

CALIBRATION_CROPS = 200  # half calibrate, half check


def evenly(n: int, count: int) -> np.ndarray:
    """Indices of `count` (at most n) items spread evenly over n."""
    return np.linspace(0, n - 1, min(count, n)).astype(int)


def cache_crops(cache: Path, count: int = CALIBRATION_CROPS) -> np.ndarray:
    """(N, 240, 240, 3) uint8: `count` crops spread evenly over the cache's validation split (the cache mixes
    photos, video frames, turned and synthetic faces in blocks, so even spacing samples every kind)."""
    val = CropDataset(cache, "val")
    if len(val) < QUANT_MIN_CROPS:
        raise FacetrackError(f"{cache} has {len(val)} validation crops: {QUANT_MIN_CROPS} or more are needed to "
                             "quantize the encoder")
    return np.stack([(val[int(i)]["image"].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
                     for i in evenly(len(val), count)])


def record(folder: Path, agreement: dict[str, float], crops: int) -> None:
    """The agreement figures into the folder's model card (JSON and a line of the Markdown)."""
    card = folder / "model_card.json"
    if card.is_file():
        doc = json.loads(card.read_text())
        doc["int8_encoder"] = {"crops": crops, "mean_abs_diff_over_sd": agreement}
        card.write_text(json.dumps(doc, indent=1))
    md = folder / "model_card.md"
    if md.is_file():
        text = "\n".join(ln for ln in md.read_text().splitlines() if not ln.startswith("- 8-bit encoder"))
        md.write_text(text.rstrip("\n") + f"\n- 8-bit encoder (`encoder.int8.onnx`, calibrated on {crops // 2} crops): "
                      f"mean |int8 - float| over the float outputs' SD on {crops - crops // 2} others: "
                      + ", ".join(f"{k} {v:.3f}" for k, v in agreement.items()) + "\n")


def write_int8(folder: Path, layout: ParamLayout, crops: np.ndarray) -> dict[str, float]:
    """`quantize_onnx` with its figures kept in the model card."""
    agreement = quantize_onnx(folder, layout, crops)
    record(folder, agreement, len(crops))
    return agreement


def write_int8_or_say(folder: Path, layout: ParamLayout, crops: Callable[[], np.ndarray], prog: str) -> None:
    """For the commands that write a whole weights folder: a refusal (too few crops, too far from float) is
    said on stderr and leaves the app on encoder.onnx, the folder's other files stand."""
    try:
        write_int8(folder, layout, crops())
    except FacetrackError as e:
        print(f"{prog}: no 8-bit encoder: {e}", file=sys.stderr)


def quantize(folder: Path, crops: np.ndarray, model_file: Path | None = None) -> dict[str, float]:
    return write_int8(folder, load_weights(folder, FaceModel.load(model_file)).model.layout, crops)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.quantize", description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=None, help="weights folder (default: the app's)")
    ap.add_argument("--cache", type=Path, required=True, help="training cache (python -m train.prepare)")
    ap.add_argument("--crops", type=int, default=CALIBRATION_CROPS, help="validation crops: half calibrate, half check")
    ap.add_argument("--model", type=Path, default=None, help="face model file (default: the built one)")
    args = ap.parse_args(argv)
    try:
        folder = paths.weights_dir(args.weights)
        agreement = quantize(folder, cache_crops(args.cache, args.crops), args.model)
    except FacetrackError as e:
        print(f"quantize: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {folder / 'encoder.int8.onnx'}: mean |int8 - float| / SD per block {agreement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
