"""One level of the face seen through the camera: the quantities every consumer shares.

Training, fitting, evaluation and the app's error overlay all build a `View` here and compare it with
the image through `facetrack.render.losses`, so the image formation model has exactly one implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facetrack.model.multilevel import Levels, MultiLevelModel, vertex_normals
from facetrack.render.camera import DEFAULT_TRANSLATION, Camera, euler_to_matrix
from facetrack.render.points import front_facing, inside
from facetrack.render.sh import default_gamma, irradiance


@dataclass
class View:
    """Per-vertex camera-frame geometry, projections, shading and visibility of one level, (B, V, ...)."""

    v_cam: torch.Tensor
    n_cam: torch.Tensor
    uv: torch.Tensor
    albedo: torch.Tensor | None  # None: geometry only (see `view`)
    shading: torch.Tensor | None
    color: torch.Tensor | None
    visible: torch.Tensor  # bool: front-facing and inside the crop


def view(v_model: torch.Tensor, albedo: torch.Tensor | None, p: dict[str, torch.Tensor], triangles: torch.Tensor,
         camera: Camera) -> View:
    """Pose, project and shade (B, V, 3) model-frame vertices with albedo under the SH light in p; without
    albedo, the geometry alone (shading and colour None: what the appearance fit starts from)."""
    R = euler_to_matrix(p["rot"])
    v_cam = v_model @ R.transpose(-1, -2) + p["trans"][:, None, :]
    n_cam = vertex_normals(v_cam, triangles)
    uv = camera.project(v_cam)
    visible = front_facing(v_cam, n_cam) & inside(uv, camera.width, camera.height)
    if albedo is None:
        return View(v_cam, n_cam, uv, None, None, None, visible)
    return shade(View(v_cam, n_cam, uv, albedo, None, None, visible), albedo, p["gamma"])


def shade(v: View, albedo: torch.Tensor, gamma: torch.Tensor) -> View:
    """The view with this albedo under the SH light gamma (B, 3, 9)."""
    shading = irradiance(v.n_cam, gamma)
    return View(v.v_cam, v.n_cam, v.uv, albedo, shading, albedo * shading, v.visible)


def views(levels: Levels, p: dict[str, torch.Tensor], triangles: torch.Tensor,
          camera: Camera) -> tuple[View, View]:
    """Base and final level views."""
    return (view(levels.v_base, levels.r_base, p, triangles, camera),
            view(levels.v_final, levels.r_final, p, triangles, camera))


def base_params(model: MultiLevelModel, batch: int = 1) -> dict[str, torch.Tensor]:
    """The rest state of image formation: mean face, frontal, at the default distance, under the default light."""
    x = torch.zeros(batch, model.layout.size)
    p = {k: t.clone() for k, t in model.layout.split(x).items()}
    p["trans"][:] = torch.tensor(DEFAULT_TRANSLATION)
    p["gamma"][:] = default_gamma(batch)
    return p
