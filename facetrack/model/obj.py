"""Wavefront OBJ reading for ICT-FaceKit meshes, plain (`.obj`) or xz-compressed (`.obj.xz`)."""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facetrack.errors import FacetrackError


@dataclass
class ObjMesh:
    """Vertex positions and, when asked for, polygons with their texture-coordinate indices."""

    vertices: np.ndarray  # (N, 3) float64
    polygons: list[np.ndarray] | None = None  # vertex indices per polygon (0-based)
    polygon_uvs: list[np.ndarray] | None = None  # texture-coordinate indices per polygon
    texcoords: np.ndarray | None = None  # (M, 2)


def find_obj(folder: Path, stem: str) -> Path:
    """`stem.obj` or `stem.obj.xz` in folder; a one-line error naming the file when neither exists."""
    for name in (f"{stem}.obj", f"{stem}.obj.xz"):
        if (folder / name).is_file():
            return folder / name
    raise FacetrackError(f"missing OBJ file: {folder / (stem + '.obj')} (or .obj.xz)")


def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".xz":
            with lzma.open(path, "rt", encoding="utf-8") as f:
                return f.read()
        return path.read_text(encoding="utf-8")
    except (lzma.LZMAError, EOFError, UnicodeDecodeError, OSError) as e:
        raise FacetrackError(f"corrupt OBJ file: {path} ({type(e).__name__}: {e})") from None


def read_obj(path: Path, topology: bool = False) -> ObjMesh:
    """Parse an OBJ; only `v` lines unless topology=True (faces and UVs are read once, from the neutral)."""
    text = _read_text(path)
    try:
        vlines = [line[2:] for line in text.splitlines() if line.startswith("v ")]
        vertices = np.array(" ".join(vlines).split(), dtype=np.float64).reshape(-1, 3)
        if not topology:
            return ObjMesh(vertices)
        polygons, polygon_uvs, uvs = [], [], []
        for line in text.splitlines():
            if line.startswith("vt "):
                uvs.append(line.split()[1:3])
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                polygons.append(np.array([int(c[0]) - 1 for c in corners], dtype=np.int64))
                polygon_uvs.append(
                    np.array([int(c[1]) - 1 if len(c) > 1 and c[1] else -1 for c in corners], dtype=np.int64)
                )
        return ObjMesh(vertices, polygons, polygon_uvs, np.array(uvs, dtype=np.float64).reshape(-1, 2))
    except ValueError as e:
        raise FacetrackError(f"corrupt OBJ file: {path} ({e})") from None


def write_obj(path: Path, vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None) -> None:
    """Write a triangle mesh; per-vertex colours go on the `v` lines (x y z r g b), as MeshLab reads them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    v = np.asarray(vertices, np.float64)
    rows = np.concatenate([v, np.clip(colors, 0, 1)], 1) if colors is not None else v
    fmt = "v" + " %.5f" * rows.shape[1]
    with path.open("w") as f:
        f.write("# facetrack mesh, centimetres\n")
        np.savetxt(f, rows, fmt=fmt)
        np.savetxt(f, np.asarray(triangles) + 1, fmt="f %d %d %d")
