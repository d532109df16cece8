"""Where facetrack finds its files. Everything external comes in by flag or environment variable, and this is
the one module that reads facetrack's environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from facetrack.errors import FacetrackError

MODEL_FILENAME = "ict_face_model.npz"
ROOT = Path(__file__).resolve().parents[1]  # a source checkout or editable install: weights/ and shaders/ live here


def _env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else None


def home() -> Path:
    """The user cache folder: $FACETRACK_HOME, else $XDG_CACHE_HOME/facetrack, else ~/.cache/facetrack."""
    if env := _env("FACETRACK_HOME"):
        return env
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "facetrack"


def model_path() -> Path:
    """The compact face model written by `facetrack model build`."""
    return home() / MODEL_FILENAME


def ict_dir(flag: str | os.PathLike | None) -> Path:
    """The ICT-FaceKit FaceXModel folder: the --ict flag, else $FACETRACK_ICT."""
    path = Path(flag).expanduser() if flag else _env("FACETRACK_ICT")
    if path is None:
        raise FacetrackError(
            "no ICT-FaceKit folder given: pass --ict DIR or set FACETRACK_ICT "
            "(clone ICT-FaceKit and point at its FaceXModel folder)"
        )
    if not path.is_dir():
        raise FacetrackError(f"ICT-FaceKit folder not found: {path}")
    return path


def weights_dir(flag: str | os.PathLike | None = None) -> Path:
    """Trained weights: the --weights flag, else $FACETRACK_WEIGHTS, else `weights/` of a source checkout."""
    return Path(flag).expanduser() if flag else (_env("FACETRACK_WEIGHTS") or ROOT / "weights")


def shader_dir() -> Path:
    """GLSL sources: $FACETRACK_SHADERS, else `shaders/` of a source checkout or editable install."""
    return _env("FACETRACK_SHADERS") or ROOT / "shaders"


def shared_dir() -> Path | None:
    """$FACETRACK_SHARED: the folder with faces/, videos/, aflw2000-sample/ and mediapipe/ (None when unset)."""
    return _env("FACETRACK_SHARED")


def shared_file(*parts: str) -> Path | None:
    """A path below $FACETRACK_SHARED, or None when the variable is unset."""
    root = shared_dir()
    return root.joinpath(*parts) if root else None


def torch_hub_checkpoints() -> Path:
    """Where torch.hub (and face-alignment) keep downloaded weights: $TORCH_HOME/hub/checkpoints."""
    return (_env("TORCH_HOME") or Path.home() / ".cache" / "torch") / "hub" / "checkpoints"


def landmarker_model(flag: str | os.PathLike | None = None) -> Path | None:
    """MediaPipe's face_landmarker.task: the --landmarker flag, else $FACETRACK_LANDMARKER; None when neither is
    set (the dlib landmarks are used then)."""
    return Path(flag).expanduser() if flag else _env("FACETRACK_LANDMARKER")


def quiet_video_decoder() -> None:
    """Silence FFmpeg's own log lines inside OpenCV (a damaged video prints hundreds); facetrack reports what a
    stream lost in one line instead. A user's own OPENCV_FFMPEG_LOGLEVEL wins."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
