"""Running the encoder: torch (CUDA when available) or ONNX Runtime on the CPU.

On a 2-core CPU ONNX Runtime runs the MobileNet-like encoder several times faster than eager torch
(see ../shared/stack-notes.md and `facetrack bench`), and its 8-bit copy (`encoder.int8.onnx`, made by
`facetrack.net.weights.quantize_onnx`) faster again, so `auto` picks that there.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.net.weights import ENCODER_INT8, Weights, read_checked


class TorchBackend:
    name = "torch"

    def __init__(self, weights: Weights, device: str | None = None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.encoder = weights.encoder.to(self.device).eval()
        self.name = f"torch-{self.device.type}"

    @torch.no_grad()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """(B, 240, 240, 3) uint8 RGB crops to (B, D) parameter vectors."""
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        return self.encoder(x).float().cpu().numpy()


class OnnxBackend:
    name = "onnxruntime-cpu"

    def __init__(self, weights: Weights, threads: int | None = None, int8: bool = False) -> None:
        import onnxruntime as ort

        path = weights.folder / (ENCODER_INT8 if int8 else "encoder.onnx")
        self.name = "onnxruntime-int8-cpu" if int8 else "onnxruntime-cpu"
        if not path.is_file():
            raise FacetrackError(f"missing weights file: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        # Idle pool threads would spin for a while after each frame and take the cores from the landmarker,
        # the reconstruction step and the GUI; a frame's encoder call is short, so let them sleep.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = read_checked(path, lambda p: ort.InferenceSession(str(p), opts,
                                                                          providers=["CPUExecutionProvider"]))

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
        return self.session.run(None, {"image": x})[0]


BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


def make_backend(weights: Weights, kind: str = "auto"):
    """`torch`, `onnx`, `onnx-int8`, or `auto`: torch on CUDA, else the first of encoder.int8.onnx and
    encoder.onnx that the weights folder has (ONNX Runtime), else torch."""
    if kind == "torch" or (kind == "auto" and torch.cuda.is_available()):
        return TorchBackend(weights)
    if kind == "onnx-int8" or (kind == "auto" and (weights.folder / ENCODER_INT8).is_file()):
        return OnnxBackend(weights, int8=True)
    if kind == "onnx" or (kind == "auto" and (weights.folder / "encoder.onnx").is_file()):
        return OnnxBackend(weights)
    if kind == "auto":
        return TorchBackend(weights)
    raise FacetrackError(f"unknown backend {kind!r} ({', '.join(BACKENDS)})")
