"""One step from a parameter vector to everything its consumers use: the `Reconstruction` of a frame.

The flat parameter vector x is the boundary of the encoder (ONNX), fitting and recordings; past this step
nobody decodes it again. `Needs` says what to compute, so a frame pays only for what is shown, recorded or
streamed: the 68 landmarks come from precomputed rows of the bases (no full mesh), a level's geometry and
shading only when asked for, the photometric error only when an image is given and it is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from facetrack.model.correspondence import Correspondence
from facetrack.model.multilevel import LinearCorrective, MultiLevelModel
from facetrack.render.camera import Camera, euler_to_matrix, matrix_to_euler
from facetrack.render.formation import View, shade, view
from facetrack.render.losses import photometric_residual

# Fits what the image decides given the geometry (lighting, reflectance): x, base and final views, the crop
# (1, 3, H, W) in [0, 1] -> x. facetrack.track.appearance.
Refine = Callable[[np.ndarray, View, View, torch.Tensor], np.ndarray]

LEVELS = ("base", "final")


@dataclass(frozen=True)
class Needs:
    """What a consumer needs of a frame beyond the parameters and the landmarks."""

    levels: frozenset[str] = frozenset(LEVELS)  # geometry, albedo and shading of these levels
    photometric: bool = False  # per-vertex and mean photometric error of those levels (needs the crop)

    def __or__(self, other: Needs) -> Needs:
        return Needs(self.levels | other.levels, self.photometric or other.photometric)


NOTHING = Needs(frozenset(), False)


@dataclass
class Level:
    """One level of the face as the camera sees it, per vertex, numpy, crop pixels and camera frame."""

    v_cam: np.ndarray  # (V, 3) cm
    normal: np.ndarray  # (V, 3)
    uv: np.ndarray  # (V, 2) crop pixels
    albedo: np.ndarray  # (V, 3) reflectance in [0, 1]
    color: np.ndarray  # (V, 3) albedo x SH irradiance, clipped to [0, 1]
    visible: np.ndarray  # (V,) bool: front-facing and inside the crop
    residual: np.ndarray | None = None  # (V,) RGB distance to the image, 0 where not counted
    photometric: float | None = None  # mean over visible vertices of the face area's photometric mask


@dataclass
class Reconstruction:
    """A frame's face: named parameters, the landmarks, and the levels that were asked for."""

    x: np.ndarray  # (D,) the flat vector, for recordings and streams
    params: dict[str, np.ndarray]  # named blocks; rot in radians, trans in cm, gamma (3, 9)
    exp_names: list[str]
    landmarks: np.ndarray  # (68, 2) final-level landmark vertices projected into the crop
    levels: dict[str, Level] = field(default_factory=dict)
    head_frame: np.ndarray = field(default_factory=lambda: np.eye(3))  # see Correspondence.head_frame

    @property
    def expressions(self) -> dict[str, float]:
        return dict(zip(self.exp_names, self.params["alpha_exp"].tolist(), strict=True))

    @property
    def rotation_deg(self) -> np.ndarray:
        """The head pose (pitch, yaw, roll) in degrees, in MediaPipe's canonical face frame: what people and
        avatar tools read as "frontal" (the model's own frame is 2 degrees off it in pitch)."""
        return np.degrees(matrix_to_euler(torch.from_numpy(self.head_rotation)).numpy())

    @property
    def rotation_matrix(self) -> np.ndarray:
        """Model frame to camera frame: what renders the mesh."""
        return euler_to_matrix(torch.from_numpy(self.params["rot"].astype(np.float64))).numpy()

    @property
    def head_rotation(self) -> np.ndarray:
        """Canonical head frame to camera frame: what reports the head pose."""
        return self.rotation_matrix @ self.head_frame

    def photometric(self) -> dict[str, float]:
        """Mean photometric error per level, for the levels where it was computed."""
        return {k: lv.photometric for k, lv in self.levels.items() if lv.photometric is not None}


class Reconstructor:
    """Turns parameter vectors into Reconstructions for one model and camera (CPU, no gradients)."""

    def __init__(self, model: MultiLevelModel, camera: Camera | None = None, head_frame: np.ndarray | None = None
                 ) -> None:
        self.model, self.camera = model, camera or Camera()
        self.head_frame = Correspondence.load().head_frame if head_frame is None else head_frame
        V, lm = model.n_vertices, model.landmarks
        with torch.no_grad():  # the landmark rows of every basis: 68 vertices instead of 9,409 per frame
            self._lm_mean = model.mean[lm]
            self._lm_id = model.id_basis.view(-1, V, 3)[:, lm]
            self._lm_exp = model.exp_basis.view(-1, V, 3)[:, lm]
            linear = isinstance(model.geo_corrective, LinearCorrective)
            self._lm_geo = model.geo_corrective.basis.view(-1, V, 3)[:, lm].clone() if linear else None
        self._memo: dict[str, tuple[bytes, torch.Tensor]] = {}

    def _once(self, name: str, coeffs: torch.Tensor, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """make() for these coefficients, kept while they stay the same: a tracked person's identity is held
        and their reflectance (base and corrective, from the appearance fit) changes only on keyframes (about
        4 ms a frame of the window's 14)."""
        key = coeffs.numpy().tobytes()
        hit = self._memo.get(name)
        if hit is None or hit[0] != key:
            hit = self._memo[name] = (key, make())
        return hit[1]

    @torch.inference_mode()
    def landmarks_cam(self, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 68, 3) final-level landmark vertices in the camera frame."""
        v = (self._lm_mean + torch.einsum("bk,kvc->bvc", p["alpha_id"], self._lm_id)
             + torch.einsum("bk,kvc->bvc", p["alpha_exp"], self._lm_exp))
        if self._lm_geo is not None:
            v = v + torch.einsum("bk,kvc->bvc", p["delta_g"], self._lm_geo)
        else:
            v = v + self.model.geo_corrective(p["delta_g"])[:, self.model.landmarks]
        return v @ euler_to_matrix(p["rot"]).transpose(-1, -2) + p["trans"][:, None]

    @torch.inference_mode()
    def __call__(self, x: np.ndarray, needs: Needs = NOTHING, crop: np.ndarray | None = None,
                 refine: Refine | None = None) -> Reconstruction:
        """x (D,) to a Reconstruction; `crop` (240, 240, 3) uint8 RGB for the photometric error and for
        `refine`, which (when levels are asked for) replaces x's appearance on the levels' own geometry."""
        model = self.model
        x = np.asarray(x, np.float32)
        p = model.params(torch.as_tensor(x)[None])
        lm = self.camera.project(self.landmarks_cam(p))[0].numpy()
        if not needs.levels:
            named = {k: v[0].numpy().copy() for k, v in p.items()}
            return Reconstruction(x, named, model.exp_names, lm, head_frame=self.head_frame)
        image = None if crop is None else \
            torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255.0
        refine = refine if image is not None else None
        v_b = model.geometry(p, self._once("neutral", p["alpha_id"], lambda: model.neutral(p["alpha_id"])))
        geometry = {"base": v_b}
        if "final" in needs.levels or refine is not None:
            geometry["final"] = v_b + model.geo_corrective(p["delta_g"])
        # geometry and pose stay as they are; with `refine`, reflectance and lighting come from the image
        views = {k: view(v, None, p, model.triangles, self.camera) for k, v in geometry.items()}
        if refine is not None:
            x = refine(x, views["base"], views["final"], image)
            p = model.params(torch.as_tensor(x)[None])
        r_b = self._once("reflectance", p["beta"], lambda: model.reflectance(p))
        albedo = {"base": r_b}
        if "final" in needs.levels:
            albedo["final"] = r_b + self._once("reflectance corrective", p["delta_r"],
                                               lambda: model.refl_corrective(p["delta_r"]))
        named = {k: v[0].numpy().copy() for k, v in p.items()}
        recon = Reconstruction(x, named, model.exp_names, lm, head_frame=self.head_frame)
        if not needs.photometric:
            image = None
        for name in LEVELS:
            if name not in needs.levels:
                continue
            vw = shade(views[name], albedo[name], p["gamma"])
            level = Level(vw.v_cam[0].numpy(), vw.n_cam[0].numpy(), vw.uv[0].numpy(), vw.albedo[0].clamp(0, 1).numpy(),
                          vw.color[0].clamp(0, 1).numpy(), vw.visible[0].numpy())
            if image is not None:
                counted = vw.visible[0] & (model.face_photo_mask > 0)
                res = photometric_residual(image, vw)[0] * counted
                level.residual = res.numpy()
                level.photometric = float(res.sum() / counted.sum().clamp(min=1))
            recon.levels[name] = level
        return recon
