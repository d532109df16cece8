"""What machine a figure came from: written beside benchmarks and training runs, so that timings and
wall times are never read without their hardware."""

from __future__ import annotations

import os
import platform

import torch


def machine() -> dict:
    """Platform, CPU count, torch and its threads, the CUDA device (or None), ONNX Runtime's version."""
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info
