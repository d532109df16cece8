"""Where facetrack keeps its files: everything external comes in by flag or environment variable."""

from __future__ import annotations

import os
from pathlib import Path

from facetrack.errors import FacetrackError

MODEL_FILENAME = "ict_face_model.npz"


def home() -> Path:
    """The user cache folder: $FACETRACK_HOME, else $XDG_CACHE_HOME/facetrack, else ~/.cache/facetrack."""
    if env := os.environ.get("FACETRACK_HOME"):
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "facetrack"


def model_path() -> Path:
    """The compact face model written by `facetrack model build`."""
    return home() / MODEL_FILENAME


def ict_dir(flag: str | os.PathLike | None) -> Path:
    """The ICT-FaceKit FaceXModel folder: the --ict flag, else $FACETRACK_ICT."""
    value = flag or os.environ.get("FACETRACK_ICT")
    if not value:
        raise FacetrackError(
            "no ICT-FaceKit folder given: pass --ict DIR or set FACETRACK_ICT "
            "(clone ICT-FaceKit and point at its FaceXModel folder)"
        )
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FacetrackError(f"ICT-FaceKit folder not found: {path}")
    return path


def weights_dir(flag: str | os.PathLike | None = None) -> Path:
    """Trained weights: the --weights flag, else $FACETRACK_WEIGHTS, else `weights/` of a source checkout."""
    value = flag or os.environ.get("FACETRACK_WEIGHTS")
    return Path(value).expanduser() if value else Path(__file__).resolve().parents[1] / "weights"
