"""The compact face model file: one `.npz` holding everything the multi-level model and the losses need.

Units are centimetres (ICT-FaceKit's), axes x right, y up, z towards the viewer (out of the face).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from facetrack import paths
from facetrack.errors import FacetrackError
from facetrack.model.checksums import verify_sidecar, write_sidecar

FORMAT_VERSION = 1
N_LANDMARKS = 68
CONTOUR_LANDMARKS = tuple(range(17))  # jawline points 0-16 slide along the silhouette
NARROW_FACE = 6706  # ICT "narrow face area", vertices 0-6705: forehead to chin, no ears or neck (eval region)


@dataclass
class FaceModel:
    """Arrays of the affine face model (base level) plus the topology tables the losses use."""

    mean: np.ndarray  # (V, 3) float32, neutral mean shape
    triangles: np.ndarray  # (T, 3) int32, counter-clockwise seen from outside
    uvs: np.ndarray  # (V, 2) float32
    id_basis: np.ndarray  # (K_id, V, 3) float32, identity modes (weights ~ N(0, sigma^2))
    id_sigma: np.ndarray  # (K_id,) float32
    exp_basis: np.ndarray  # (K_exp, V, 3) float32, blendshape offsets (weights in [0, 1])
    exp_names: np.ndarray  # (K_exp,) str, ARKit names
    refl_mean: np.ndarray  # (V, 3) float32, linear RGB albedo in [0, 1]
    refl_basis: np.ndarray  # (K_r, V, 3) float32, zero until a reflectance model is learned
    refl_sigma: np.ndarray  # (K_r,) float32
    refl_learned: np.ndarray  # () bool
    landmarks: np.ndarray  # (68,) int32, Multi-PIE 68 vertex indices (contour entries are defaults)
    contour_ptr: np.ndarray  # (18,) int32, CSR row pointers of sliding-contour candidates, landmarks 0-16
    contour_idx: np.ndarray  # int32, candidate vertex indices
    skin_mask: np.ndarray  # (V,) bool, skin for global reflectance constancy
    photo_mask: np.ndarray  # (V,) bool, vertices away from mesh holes and rim, for the photometric term
    ring_ptr: np.ndarray  # (V+1,) int32, CSR 1-ring neighbourhoods (Laplacian)
    ring_idx: np.ndarray  # int32
    source: np.ndarray  # () str, JSON provenance

    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])

    def contour_candidates(self, i: int) -> np.ndarray:
        """Vertex indices the i-th contour landmark (0-16) may slide to."""
        return self.contour_idx[self.contour_ptr[i] : self.contour_ptr[i + 1]]

    def info(self) -> dict:
        """Counts for `facetrack model info`."""
        sizes = [len(self.contour_candidates(i)) for i in CONTOUR_LANDMARKS]
        return {
            "vertices": self.n_vertices,
            "triangles": int(self.triangles.shape[0]),
            "identity_modes": int(self.id_basis.shape[0]),
            "expression_shapes": int(self.exp_basis.shape[0]),
            "expression_names": [str(n) for n in self.exp_names],
            "reflectance_modes": int(self.refl_basis.shape[0]),
            "reflectance_learned": bool(self.refl_learned),
            "landmarks": int(self.landmarks.shape[0]),
            "sliding_contour_landmarks": len(CONTOUR_LANDMARKS),
            "contour_candidates_min_max": [int(min(sizes)), int(max(sizes))],
            "skin_vertices": int(self.skin_mask.sum()),
            "photometric_vertices": int(self.photo_mask.sum()),
            "mean_ring_size": round(float(np.diff(self.ring_ptr).mean()), 2),
            "source": json.loads(str(self.source)),
        }

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, then a rename, so no half-written model."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".facemodel-", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, format_version=np.int32(FORMAT_VERSION),
                         **{fl.name: getattr(self, fl.name) for fl in fields(self)})
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        write_sidecar(path)

    @classmethod
    def load(cls, path: Path | None = None) -> FaceModel:
        """Load the model file; a one-line error says how to build it when it is missing."""
        path = Path(path) if path else paths.model_path()
        if not path.is_file():
            raise FacetrackError(
                f"face model not found: {path} (run: facetrack model build --ict DIR/ICT-FaceKit/FaceXModel)"
            )
        rebuild = "rebuild it: facetrack model build --ict DIR/ICT-FaceKit/FaceXModel"
        verify_sidecar(path, rebuild)
        if not zipfile.is_zipfile(path):
            raise FacetrackError(f"damaged face model file: {path} (not an .npz archive: truncated or "
                                 f"overwritten?); {rebuild}")
        try:
            with np.load(path, allow_pickle=False) as z:
                version = int(z["format_version"])
                if version != FORMAT_VERSION:
                    raise FacetrackError(
                        f"face model {path} has format {version}, expected {FORMAT_VERSION}: {rebuild}")
                face = cls(**{fl.name: z[fl.name] for fl in fields(cls)})
        except FacetrackError:
            raise
        except Exception as e:  # noqa: BLE001 - zip, zlib, numpy and the OS raise many kinds for a damaged file
            raise FacetrackError(f"damaged face model file: {path} ({type(e).__name__}: {str(e)[:100]}); "
                                 f"{rebuild}") from None
        if face.mean.ndim != 2 or face.mean.shape[1] != 3 or not np.isfinite(face.mean).all():
            raise FacetrackError(f"damaged face model file: {path} (vertices unreadable); {rebuild}")
        return face
