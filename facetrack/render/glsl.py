"""Locating the GLSL sources in the top-level `shaders/` folder."""

from __future__ import annotations

import os
from pathlib import Path

from facetrack.errors import FacetrackError


def shader_dir() -> Path:
    """$FACETRACK_SHADERS, else `shaders/` beside the package (a source checkout or editable install)."""
    if env := os.environ.get("FACETRACK_SHADERS"):
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shaders"


def load(name: str) -> str:
    path = shader_dir() / name
    if not path.is_file():
        raise FacetrackError(f"shader not found: {path} (set FACETRACK_SHADERS to the shaders folder)")
    return path.read_text()
