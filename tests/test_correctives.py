"""Growing the reflectance correctives from the residuals of the app's fit (train.correctives)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from facetrack.model.checksums import verify_in_folder
from facetrack.model.facemodel import FaceModel
from facetrack.net.runtime import make_backend
from facetrack.net.weights import load_weights
from train.correctives import grow, main


def test_grow_keeps_every_output_and_appends_modes(weights: Path, model_file: Path) -> None:
    w = load_weights(weights, FaceModel.load(model_file))
    V = w.model.n_vertices
    modes = np.random.default_rng(0).normal(0, 0.01, (3, V * 3)).astype(np.float32)
    enc, model = grow(w, modes)
    assert model.layout.n_cr == w.model.layout.n_cr + 3
    crop = torch.rand(2, 3, 240, 240)
    with torch.inference_mode():
        old, new = w.model.params(w.encoder(crop)), model.params(enc(crop))
        for k, v in old.items():
            if k == "delta_r":
                assert torch.allclose(new[k][:, : v.shape[1]], v, atol=1e-6) and (new[k][:, v.shape[1]:] == 0).all()
            else:
                assert torch.allclose(new[k], v, atol=1e-6), k
        # the final level's reflectance is unchanged while the new coefficients are 0 ...
        assert torch.allclose(model.refl_corrective(new["delta_r"]), w.model.refl_corrective(old["delta_r"]), atol=1e-5)
        # ... and each new coefficient adds its mode
        unit = torch.zeros(1, model.layout.n_cr)
        unit[0, -1] = 1.0
        assert torch.allclose(model.refl_corrective(unit).reshape(-1), torch.from_numpy(modes[-1]), atol=1e-6)
    assert torch.equal(model.geo_corrective.basis, w.model.geo_corrective.basis)


def test_correctives_command_writes_loadable_weights(weights: Path, model_file: Path, shared_dir: Path,
                                                     landmarker: Path, tmp_path: Path) -> None:
    out = tmp_path / "grown"
    assert main(["--weights", str(weights), "--images", str(shared_dir / "faces" / "utkface"), "--out", str(out),
                 "--photos", "16", "--modes", "3", "--landmarker", str(landmarker), "--model", str(model_file)]) == 0
    verify_in_folder(out / "correctives.pt", "reinstall")
    before = load_weights(weights, FaceModel.load(model_file))
    w = load_weights(out, FaceModel.load(model_file))
    n = before.model.layout.n_cr
    assert w.model.layout.n_cr == n + 3
    added = w.model.refl_corrective.basis[n:].reshape(3, -1, 3)
    assert torch.isfinite(added).all() and added.abs().sum() > 0
    face = (w.model.face_photo_mask > 0).numpy()
    assert (added[:, ~face] == 0).all()  # only vertices a photo showed (inside the face's photometric mask)
    card = json.loads((out / "model_card.json").read_text())
    assert card["correctives"]["n_reflectance"] == n + 3 and card["grown"][-1]["new_modes"] == 3
    # The 8-bit encoder is made again from the grown float one (the copied one would miss the new outputs).
    assert (out / "encoder.int8.onnx").is_file() and "int8_encoder" in card
    x = make_backend(w, "onnx-int8")(np.zeros((1, 240, 240, 3), np.uint8))
    assert x.shape == (1, w.model.layout.size)
    assert main(["--weights", str(weights), "--images", str(tmp_path / "none"), "--out", str(tmp_path / "x"),
                 "--landmarker", str(landmarker), "--model", str(model_file)]) == 2  # one-line error
