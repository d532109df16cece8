"""The 8-bit encoder: written from the shipped float one, calibrated and checked on real face crops, picked
by `auto`, kept out of date never (a new encoder.onnx removes it), refused when it strays."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrack.errors import FacetrackError
from facetrack.model.checksums import verify_in_folder
from facetrack.model.facemodel import FaceModel
from facetrack.net import weights as wmod
from facetrack.net.runtime import make_backend
from facetrack.net.weights import ENCODER_INT8, load_weights, quantize_onnx, save_weights
from facetrack.vision.faces import FaceFinder


@pytest.fixture(scope="module")
def crops(shared_dir: Path) -> np.ndarray:
    """Face crops of 20 real photos, framed as the app frames them (dlib front end)."""
    finder = FaceFinder("dlib")
    out = []
    for p in sorted((shared_dir / "faces" / "utkface").glob("*.jpg"))[:30]:
        face = finder(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))
        if face is not None:
            out.append(face.crop)
    assert len(out) >= 20
    return np.stack(out[:20])


@pytest.fixture()
def folder(weights: Path, tmp_path: Path) -> Path:
    out = tmp_path / "w"
    shutil.copytree(weights, out)
    (out / ENCODER_INT8).unlink(missing_ok=True)
    return out


def test_quantized_encoder_agrees_with_float_and_is_picked(folder: Path, face: FaceModel, crops: np.ndarray) -> None:
    w = load_weights(folder, face)
    assert make_backend(w).name == "onnxruntime-cpu"  # no 8-bit file: the float one
    agreement = quantize_onnx(folder, w.model.layout, crops[:16])
    assert set(agreement) == set(w.model.layout.slices()) and max(agreement.values()) < wmod.QUANT_TOLERANCE
    verify_in_folder(folder / ENCODER_INT8, "reinstall")  # listed in SHA256SUMS with its digest
    fast, ref = make_backend(w), make_backend(w, "onnx")
    assert fast.name == "onnxruntime-int8-cpu"
    a, b = ref(crops[16:]), fast(crops[16:])  # crops neither calibration nor check saw
    rot = w.model.layout.slices()["rot"]
    assert np.degrees(np.abs(a[:, rot] - b[:, rot])).max() < 2.0  # head rotation within 2 degrees
    assert np.abs(a - b).mean() < 0.1 * np.abs(a).mean()
    assert (folder / ENCODER_INT8).stat().st_size < 0.5 * (folder / "encoder.onnx").stat().st_size

    # A new float encoder makes the 8-bit one stale: save_weights removes it, and auto runs the float one.
    save_weights(folder, w.encoder, w.model, "linear", folder / "reflectance.npz")
    assert not (folder / ENCODER_INT8).exists()
    assert make_backend(load_weights(folder, face)).name == "onnxruntime-cpu"


def test_quantized_encoder_that_strays_is_not_written(folder: Path, face: FaceModel, crops: np.ndarray,
                                                      monkeypatch) -> None:
    w = load_weights(folder, face)
    monkeypatch.setattr(wmod, "QUANT_TOLERANCE", 0.0)
    with pytest.raises(FacetrackError, match="differs from float") as e:
        quantize_onnx(folder, w.model.layout, crops[:16])
    assert "\n" not in str(e.value) and not (folder / ENCODER_INT8).exists()
    with pytest.raises(FacetrackError, match="at least 16"):
        quantize_onnx(folder, w.model.layout, crops[:15])
