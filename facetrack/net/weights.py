"""The weights folder format (`weights/`): written here by `save_weights` (train.export calls it) and read
here by `load_weights` (the app), so the format has one home.

    weights/encoder.pt      encoder state, backbone name, layout sizes, corrective kind
    weights/correctives.pt  Theta_g, Theta_r (the learned corrective bases)
    weights/reflectance.npz base reflectance model: mean (V, 3), basis (K, V, 3), sigma (K,)
    weights/encoder.onnx    the encoder for ONNX Runtime (CPU)
    weights/encoder.int8.onnx  the same with its backbone in 8 bits (written by `quantize_onnx`)
    weights/model_card.md   data, schedule, validation figures, git commit (also model_card.json)
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.model.checksums import verify_in_folder, write_manifest
from facetrack.model.facemodel import FaceModel
from facetrack.model.layout import ParamLayout
from facetrack.model.multilevel import MultiLevelModel
from facetrack.net.encoder import Encoder
from facetrack.render.camera import CROP_SIZE


def save_reflectance(path: Path, mean: np.ndarray, basis: np.ndarray, sigma: np.ndarray, meta: str = "") -> None:
    """The basis is stored in float16 (half the size in git; its entries are a few hundredths), zipped."""
    np.savez_compressed(path, mean=mean.astype(np.float32), basis=basis.astype(np.float16),
                        sigma=sigma.astype(np.float32), meta=np.asarray(meta))


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
    (out / ENCODER_INT8).unlink(missing_ok=True)  # made from the old encoder.onnx: quantize_onnx makes it again
    err = export_onnx(encoder, out / "encoder.onnx")
    if err > ONNX_TOLERANCE:
        raise FacetrackError(f"ONNX export differs from torch by {err:.2e} (> {ONNX_TOLERANCE})")
    write_manifest(out, list(WEIGHT_FILES))
    return err


ENCODER_INT8 = "encoder.int8.onnx"
WEIGHT_FILES = ("encoder.pt", "correctives.pt", "reflectance.npz", "encoder.onnx", ENCODER_INT8)
QUANT_TOLERANCE = 0.15
QUANT_MIN_CROPS = 16


def _half_head(path: Path) -> None:
    """Store the float head's weight matrix in float16 behind a Cast (folded when the session loads, so no
    slower): it is most of the 8-bit file, and float16 keeps the weights folder small."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(path))
    inits = {i.name: i for i in m.graph.initializer}
    for node in [n for n in m.graph.node if n.op_type == "Gemm" and n.input[1] in inits]:
        w = inits[node.input[1]]
        m.graph.initializer.remove(w)
        m.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(w).astype(np.float16),
                                                           w.name + "_fp16"))
        m.graph.node.insert(0, helper.make_node("Cast", [w.name + "_fp16"], [w.name], to=TensorProto.FLOAT,
                                                name=w.name + "_cast"))
    onnx.save(m, str(path))


def quantize_onnx(folder: Path, layout: ParamLayout, crops: np.ndarray) -> dict[str, float]:
    """Write `encoder.int8.onnx`: encoder.onnx with its backbone in 8 bits (ONNX Runtime's static QDQ
    quantization, weights per channel, activations calibrated on the first half of `crops`, (N, 240, 240, 3)
    uint8 RGB as the app feeds them).

    Why: on a 2-core CPU the encoder shares the cores with MediaPipe's landmarker, which bounds the frame
    rate; in 8 bits it takes about 0.6x the time (`facetrack bench`). The head and the output affine stay in
    float: one 8-bit scale over outputs as different as translation in cm and expressions in [0, 1] would
    wreck them. Returns, per output block, the mean |int8 - float| over the float outputs' SD on the other
    half of the crops; a block above QUANT_TOLERANCE is a one-line error and no file is kept.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(crops) < QUANT_MIN_CROPS:  # fewer give no usable spread to check against
        raise FacetrackError(f"quantizing the encoder needs at least {QUANT_MIN_CROPS} face crops, got {len(crops)}")
    x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
    half = len(x) // 2
    calib, check = x[:half], x[half:]

    class Crops(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self) -> dict | None:
            item = next(self.items, None)
            return None if item is None else {"image": item}

    src, out = folder / "encoder.onnx", folder / ENCODER_INT8
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        read_checked(src, lambda p: quant_pre_process(str(p), str(pre)))
        head = [n.name for n in onnx.load(str(pre)).graph.node if not n.name.startswith("/backbone/")]
        quantize_static(str(pre), str(Path(tmp) / ENCODER_INT8), Crops(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        nodes_to_exclude=head)
        _half_head(Path(tmp) / ENCODER_INT8)

        def run(path: Path) -> np.ndarray:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return np.concatenate([sess.run(None, {"image": check[i:i + 1]})[0] for i in range(len(check))])

        ref, got = run(src), run(Path(tmp) / ENCODER_INT8)
        spread = {k: float(np.abs(got[:, s] - ref[:, s]).mean() / max(float(ref[:, s].std(0).mean()), 1e-6))
                  for k, s in layout.slices().items()}
        worst = max(spread, key=spread.get)
        if spread[worst] > QUANT_TOLERANCE:
            raise FacetrackError(f"the 8-bit encoder's {worst} differs from float by {spread[worst]:.2f} of its "
                                 f"spread (> {QUANT_TOLERANCE}): encoder.int8.onnx not written")
        shutil.move(str(Path(tmp) / ENCODER_INT8), out)
    write_manifest(folder, list(WEIGHT_FILES))
    return {k: round(v, 4) for k, v in spread.items()}


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
