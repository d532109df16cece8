"""The weights folder format (`weights/`): written here by `save_weights` (train.export calls it) and read
here by `load_weights` (the app), so the format has one home.

    weights/encoder.pt      encoder state, backbone name, layout sizes, corrective kind
    weights/correctives.pt  Theta_g, Theta_r (the learned corrective bases)
    weights/reflectance.npz base reflectance model: mean (V, 3), basis (K, V, 3), sigma (K,)
    weights/encoder.onnx    the encoder for ONNX Runtime (CPU)
    weights/model_card.md   data, schedule, validation figures, git commit (also model_card.json)
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.model.checksums import verify_in_folder, write_manifest
from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel
from facetrack.net.encoder import Encoder
from facetrack.render.camera import CROP_SIZE


def save_reflectance(path: Path, mean: np.ndarray, basis: np.ndarray, sigma: np.ndarray, meta: str = "") -> None:
    """The basis is stored in float16 (half the size in git; its entries are a few hundredths)."""
    np.savez(path, mean=mean.astype(np.float32), basis=basis.astype(np.float16), sigma=sigma.astype(np.float32),
             meta=np.asarray(meta))


ONNX_TOLERANCE = 1e-3


def export_onnx(encoder: Encoder, path: Path) -> float:
    """Write the ONNX graph (dynamic batch) and return the max |onnx - torch| on random crops."""
    import onnxruntime as ort

    encoder = encoder.eval()
    dummy = torch.rand(2, 3, CROP_SIZE, CROP_SIZE)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(encoder, (dummy,), str(path), input_names=["image"], output_names=["params"],
                          dynamic_axes={"image": {0: "batch"}, "params": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.rand(3, 3, CROP_SIZE, CROP_SIZE)
    with torch.no_grad():
        ref = encoder(x).numpy()
    got = sess.run(None, {"image": x.numpy()})[0]
    return float(np.abs(got - ref).max())


def save_weights(out: Path, encoder: Encoder, model: MultiLevelModel, corrective: str, reflectance: Path,
                 half: bool = True) -> float:
    """Write encoder.pt, correctives.pt (float16 when `half`), reflectance.npz and encoder.onnx; returns the
    ONNX export's max difference from torch (a one-line error above ONNX_TOLERANCE)."""
    out.mkdir(parents=True, exist_ok=True)

    def maybe_half(sd: dict) -> dict:
        return {k: v.half() if half and v.is_floating_point() else v for k, v in sd.items()}

    lay = model.layout
    torch.save({"state": encoder.state_dict(), "backbone": encoder.backbone_name, "layout_size": lay.size,
                "n_cg": lay.n_cg, "n_cr": lay.n_cr, "corrective": corrective}, out / "encoder.pt")
    torch.save({"geometry": maybe_half(model.geo_corrective.state_dict()),
                "reflectance": maybe_half(model.refl_corrective.state_dict())}, out / "correctives.pt")
    if reflectance.resolve() != (out / "reflectance.npz").resolve():
        shutil.copyfile(reflectance, out / "reflectance.npz")
    err = export_onnx(encoder, out / "encoder.onnx")
    if err > ONNX_TOLERANCE:
        raise FacetrackError(f"ONNX export differs from torch by {err:.2e} (> {ONNX_TOLERANCE})")
    write_manifest(out, list(WEIGHT_FILES))
    return err


WEIGHT_FILES = ("encoder.pt", "correctives.pt", "reflectance.npz", "encoder.onnx")
REINSTALL = "reinstall the weights: git checkout weights/, or retrain (README: Train)"


def read_checked(path: Path, read, check: bool = True):
    """`read(path)` after the folder's SHA-256 check; any loader error becomes one line naming the file."""
    if check:
        verify_in_folder(path, REINSTALL)
    try:
        return read(path)
    except FacetrackError:
        raise
    except Exception as e:  # noqa: BLE001 - torch, numpy and zip raise a dozen kinds for a damaged file
        raise FacetrackError(f"cannot read weights file {path} ({type(e).__name__}: {str(e)[:120]}); "
                             f"{REINSTALL}") from None


def load_reflectance(face: FaceModel, path: Path) -> FaceModel:
    """A copy of the face model whose base reflectance is the learned one in `path`."""
    def read(p: Path) -> tuple[np.ndarray, ...]:
        with np.load(p) as z:
            return tuple(z[k].astype(np.float32) for k in ("mean", "basis", "sigma"))

    mean, basis, sigma = read_checked(path, read)
    if mean.shape != face.refl_mean.shape:
        raise FacetrackError(f"reflectance model {path} has {mean.shape[0]} vertices, the face model "
                             f"{face.n_vertices}")
    return dataclasses.replace(face, refl_mean=mean, refl_basis=basis, refl_sigma=sigma,
                               refl_learned=np.asarray(True))


def _encoder_file(enc: dict) -> dict:
    if not isinstance(enc, dict) or not {"state", "backbone", "layout_size", "n_cg", "n_cr",
                                         "corrective"} <= set(enc):
        raise ValueError("not an encoder file")
    return enc


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
    enc = read_checked(folder / "encoder.pt", lambda p: _encoder_file(torch.load(p, map_location=device,
                                                                                  weights_only=False)))
    model = MultiLevelModel(face, enc["n_cg"], enc["n_cr"], enc["corrective"])
    if model.layout.size != enc["layout_size"]:
        raise FacetrackError(f"{folder / 'encoder.pt'} expects {enc['layout_size']} parameters, the face model "
                             f"gives {model.layout.size}: rebuild the model with the same sizes")
    corr = read_checked(folder / "correctives.pt", lambda p: torch.load(p, map_location=device, weights_only=False))

    def load_states(_: Path) -> Encoder:
        model.geo_corrective.load_state_dict(corr["geometry"])
        model.refl_corrective.load_state_dict(corr["reflectance"])
        encoder = Encoder(model.layout, enc["backbone"])
        encoder.load_state_dict(enc["state"])
        return encoder

    encoder = read_checked(folder / "correctives.pt", load_states, check=False)  # wrong keys or shapes: one line
    return Weights(face, model.to(device).eval(), encoder.to(device).eval(), folder)
