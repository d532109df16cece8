"""Locating the GLSL sources in the top-level `shaders/` folder."""

from __future__ import annotations

from facetrack import paths
from facetrack.errors import FacetrackError


def load(name: str) -> str:
    path = paths.shader_dir() / name
    if not path.is_file():
        raise FacetrackError(f"shader not found: {path} (set FACETRACK_SHADERS to the shaders folder)")
    return path.read_text()
