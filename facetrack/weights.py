"""The shipped weights folder (`weights/`), written by `train.export` and loaded by the app.

    weights/encoder.pt      encoder state, backbone name, layout sizes, corrective kind
    weights/correctives.pt  Theta_g, Theta_r (the learned corrective bases)
    weights/reflectance.npz base reflectance model: mean (V, 3), basis (K, V, 3), sigma (K,)
    weights/encoder.onnx    the encoder for ONNX Runtime (CPU)
    weights/model_card.md   data, schedule, validation figures, git commit (also model_card.json)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facetrack.encoder import Encoder
from facetrack.errors import FacetrackError
from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel


def save_reflectance(path: Path, mean: np.ndarray, basis: np.ndarray, sigma: np.ndarray, meta: str = "") -> None:
    """The basis is stored in float16 (half the size in git; its entries are a few hundredths)."""
    np.savez(path, mean=mean.astype(np.float32), basis=basis.astype(np.float16), sigma=sigma.astype(np.float32),
             meta=np.asarray(meta))


def load_reflectance(face: FaceModel, path: Path) -> FaceModel:
    """A copy of the face model whose base reflectance is the learned one in `path`."""
    try:
        with np.load(path) as z:
            mean, basis, sigma = (z[k].astype(np.float32) for k in ("mean", "basis", "sigma"))
    except (OSError, KeyError, ValueError) as e:
        raise FacetrackError(f"cannot read reflectance model {path}: {e}") from None
    if mean.shape != face.refl_mean.shape:
        raise FacetrackError(f"reflectance model {path} has {mean.shape[0]} vertices, the face model "
                             f"{face.n_vertices}")
    return dataclasses.replace(face, refl_mean=mean, refl_basis=basis, refl_sigma=sigma,
                               refl_learned=np.asarray(True))


@dataclass
class Weights:
    """What the app runs: the face model with learned reflectance, correctives and the encoder."""

    face: FaceModel
    model: MultiLevelModel
    encoder: Encoder
    folder: Path


def load_weights(folder: Path, face: FaceModel | None = None, device: str = "cpu") -> Weights:
    """Load weights/ (see module docstring); one-line errors for missing or mismatched files."""
    folder = Path(folder)
    for name in ("encoder.pt", "correctives.pt", "reflectance.npz"):
        if not (folder / name).is_file():
            raise FacetrackError(f"missing weights file: {folder / name} (train and export, see README: Train)")
    face = load_reflectance(face or FaceModel.load(), folder / "reflectance.npz")
    enc = torch.load(folder / "encoder.pt", map_location=device, weights_only=False)
    model = MultiLevelModel(face, enc["n_cg"], enc["n_cr"], enc["corrective"])
    if model.layout.size != enc["layout_size"]:
        raise FacetrackError(f"{folder / 'encoder.pt'} expects {enc['layout_size']} parameters, the face model "
                             f"gives {model.layout.size}: rebuild the model with the same sizes")
    corr = torch.load(folder / "correctives.pt", map_location=device, weights_only=False)
    model.geo_corrective.load_state_dict(corr["geometry"])
    model.refl_corrective.load_state_dict(corr["reflectance"])
    encoder = Encoder(model.layout, enc["backbone"])
    encoder.load_state_dict(enc["state"])
    return Weights(face, model.to(device).eval(), encoder.to(device).eval(), folder)
