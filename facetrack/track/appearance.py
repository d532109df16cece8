"""Run-time photometric fit of the face's appearance: SH lighting and the reflectance of both levels.

The encoder guesses reflectance and lighting from one crop. Like the identity, a person's reflectance is
better taken from the images themselves and then held (the issue's "identity and reflectance are not
re-guessed every frame"), and the lighting follows the scene. Image formation is linear in each of them
given the other (colour = albedo x (SH basis(normal) . gamma)), so each is a small least-squares solve on the
fitted geometry, in turn:
- lighting gamma (27): per channel, given the albedo;
- the base level's reflectance beta (80): on the base level's shading, prior N(0, sigma_r^2);
- the final level's reflectance correctives delta_r (C_r): on the final level's shading, explaining what the
  base level leaves; the prior is the size of the albedo change they make.
Each level is fitted in its own space, so base and final stay the paper's two levels (the correctives add
what the 80 reflectance modes cannot say). The data term is the paper's l2,1 photometric term, by
reweighting: hair, glasses and hands over the face count less than skin. In a stream, the reflectance's
normal equations are summed over the first frames and then over keyframes (the person is held), and only
the lighting is solved every frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg.blas import dsyrk as syrk

from facetrack.model.multilevel import LinearCorrective, MultiLevelModel
from facetrack.render.camera import Camera
from facetrack.render.formation import View
from facetrack.render.points import sample
from facetrack.render.sh import sh_basis


@dataclass
class AppearanceConfig:
    samples: int = 1200  # face vertices that carry the fit (an even subset of the face's photometric mask)
    rounds: int = 2  # lighting and reflectance solved in turn this often on a frame that updates the person
    w_light: float = 1e-3  # a photo's lighting towards the encoder's (per squared coefficient) ...
    w_light_previous: float = 1e-2  # ... a stream's towards the last frame's (against flicker)
    w_beta: float = 1e-4  # base reflectance towards zero (per squared sigma)
    w_corrective: float = 0.01  # corrective albedo change (mean squared RGB over the samples)
    w_corrective_ridge: float = 1e-6  # conditioning of the corrective solve (per squared coefficient)
    robust_floor: float = 0.1  # l2,1 reweighting: weight 1 / max(residual, floor)
    calibration_frames: int = 40  # a stream: frames that set the reflectance at the start ...
    calibration_every: int = 4  # ... using every n-th of them
    keyframe_every: int = 30  # afterwards, the reflectance evidence grows from every n-th frame
    keyframe_weight: float = 0.25


@dataclass
class AppearanceState:
    """The person's reflectance evidence (normal equations summed over frames, each frame weighing 1 or the
    keyframe weight) and the estimates it gives."""

    H_beta: np.ndarray | None = None  # base level: beta
    g_beta: np.ndarray | None = None
    H_delta: np.ndarray | None = None  # final level: delta_r given beta, g_delta - C beta
    g_delta: np.ndarray | None = None
    C: np.ndarray | None = None
    weight: float = 0.0
    beta: np.ndarray | None = None
    delta: np.ndarray | None = None
    gamma: np.ndarray | None = None  # the last frame's lighting
    frames: int = 0

    def add(self, name: str, value: np.ndarray, w: float) -> np.ndarray:
        """The summed evidence `name` with this frame's (weighted) added, without storing it."""
        old = getattr(self, name)
        return w * value if old is None else old + w * value


class AppearanceFitter:
    """Callable per frame: (x after the pose and expression fit, the 240x240 crop) -> x with lighting,
    reflectance and reflectance correctives fitted to the crop."""

    def __init__(self, model: MultiLevelModel, camera: Camera, cfg: AppearanceConfig | None = None) -> None:
        self.model, self.camera, self.cfg = model, camera, cfg or AppearanceConfig()
        self.sl = model.layout.slices()
        counted = np.flatnonzero(model.face_photo_mask.numpy() > 0)
        step = max(1, len(counted) // self.cfg.samples)
        self.idx = torch.from_numpy(counted[::step].copy())
        V = model.n_vertices
        pick = self.idx.numpy()
        self.refl_mean = model.refl_mean.numpy().astype(np.float64)[pick]  # (S, 3)
        self.refl_rows = model.refl_basis.view(-1, V, 3)[:, self.idx].numpy().astype(np.float64)  # (80, S, 3)
        self.refl_sigma = model.refl_sigma.numpy().astype(np.float64)
        corr = model.refl_corrective
        self.corr_rows = corr.basis.detach().view(-1, V, 3)[:, self.idx].numpy().astype(np.float64) \
            if isinstance(corr, LinearCorrective) else None  # (C_r, S, 3); an MLP corrective is left as it is
        self.beta_prior = self.cfg.w_beta * np.diag(1.0 / self.refl_sigma**2)
        if self.corr_rows is not None:  # the correctives' prior: the albedo change they make, towards none (the
            flat = self.corr_rows.reshape(len(self.corr_rows), -1)  # encoder's delta_r belongs to its own beta)
            self.corrective_prior = self.cfg.w_corrective * flat @ flat.T / len(pick) \
                + self.cfg.w_corrective_ridge * np.eye(len(flat))
        self.state = AppearanceState()
        self.last_ms = 0.0  # the last call's time

    def reset(self) -> None:
        """Another person (or an unrelated photo): the reflectance is learned afresh."""
        self.state = AppearanceState()

    # -- the levels at the samples ---------------------------------------------------------------------
    def _samples(self, vw: View, image: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At the sample vertices: visible (S,) bool, SH basis (S, 9) and the image's colour (S, 3)."""
        idx = self.idx
        with torch.inference_mode():
            vis = vw.visible[0, idx].numpy()
            Y = sh_basis(vw.n_cam[0, idx]).numpy().astype(np.float64)
            obs = sample(image, vw.uv[:, idx])[0].numpy().astype(np.float64)
        return vis, Y, obs

    # -- the solves ----------------------------------------------------------------------------------------
    @staticmethod
    def _light(Y: np.ndarray, albedo: np.ndarray, obs: np.ndarray, w: np.ndarray, gamma0: np.ndarray,
               prior: float) -> np.ndarray:
        """(3, 9) lighting given per-sample albedo (S, 3), weights w (S,), pulled towards gamma0."""
        out = np.empty((3, 9))
        wn = w / w.sum()
        for c in range(3):
            A = Y * albedo[:, c:c + 1]
            H = (A * wn[:, None]).T @ A + prior * np.eye(9)
            g = (A * wn[:, None]).T @ obs[:, c] + prior * gamma0[c]
            out[c] = np.linalg.solve(H, g)
        return out

    @staticmethod
    def _weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The samples with weight and the square roots of their weights, normalized to sum 1 so that every
        frame counts alike."""
        keep = np.flatnonzero(w > 0)
        return keep, np.sqrt(w[keep] / max(w.sum(), 1e-12))[:, None]

    @staticmethod
    def _gram(A: np.ndarray) -> np.ndarray:
        """A A^T by a symmetric rank-k update (half the work of the product; A.T is Fortran-ordered)."""
        H = syrk(1.0, A.T, trans=1)
        return np.triu(H) + np.triu(H, 1).T

    def _base_evidence(self, S: np.ndarray, obs: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This frame's normal equations for beta; S (S, 3) the base level's shading, w (S,) sample weights
        (zero where not visible)."""
        keep, sw = self._weights(w)
        A = (self.refl_rows[:, keep] * (S[keep] * sw)).reshape(len(self.refl_rows), -1)  # (80, S'*3)
        return self._gram(A), A @ ((obs[keep] - S[keep] * self.refl_mean[keep]) * sw).ravel()

    def _corrective_evidence(self, S: np.ndarray, obs: np.ndarray, w: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This frame's normal equations for delta_r on the final level's shading S: (H, g, C) with the
        right-hand side g - C beta, so that the sums stay exact when beta changes."""
        keep, sw = self._weights(w)
        scale = S[keep] * sw
        A = (self.corr_rows[:, keep] * scale).reshape(len(self.corr_rows), -1)  # (C_r, S'*3)
        E = (self.refl_rows[:, keep] * scale).reshape(len(self.refl_rows), -1)
        return self._gram(A), A @ ((obs[keep] - S[keep] * self.refl_mean[keep]) * sw).ravel(), A @ E.T

    def _robust(self, residual: np.ndarray, vis: np.ndarray) -> np.ndarray:
        return vis / np.maximum(np.linalg.norm(residual, axis=1), self.cfg.robust_floor)

    def __call__(self, x: np.ndarray, vb: View, vf: View, image: torch.Tensor, stream: bool = False) -> np.ndarray:
        """x with lighting and reflectance fitted to `image` (1, 3, 240, 240) in [0, 1], given the views of
        both levels at x's geometry and pose (their albedo and shading are not used)."""
        t0 = time.perf_counter()
        x = self._fit(x, vb, vf, image, stream)
        self.last_ms = 1e3 * (time.perf_counter() - t0)
        return x

    def _fit(self, x: np.ndarray, vb: View, vf: View, image: torch.Tensor, stream: bool) -> np.ndarray:
        cfg, sl, st = self.cfg, self.sl, self.state
        x = np.asarray(x, np.float32).copy()
        vis_b, Y_b, obs = self._samples(vb, image)
        vis_f, Y_f, _ = self._samples(vf, image)  # (the final level samples nearly the same pixels)
        vis = (vis_b & vis_f).astype(np.float64)
        if vis.sum() < 50:
            return x
        # the lighting's prior: the encoder's guess on a photo, the last frame's lighting in a stream
        gamma0 = st.gamma if stream and st.gamma is not None else x[sl["gamma"]].reshape(3, 9).astype(np.float64)
        w_light = cfg.w_light_previous if stream and st.gamma is not None else cfg.w_light
        beta = st.beta if st.beta is not None else x[sl["beta"]].astype(np.float64)
        delta = st.delta if st.delta is not None else x[sl["delta_r"]].astype(np.float64)
        n = st.frames
        st.frames += 1
        update = not stream or st.beta is None or (n < cfg.calibration_frames and n % cfg.calibration_every == 0) \
            or (n >= cfg.calibration_frames and n % cfg.keyframe_every == 0)
        frame_weight = 1.0 if (not stream or n < cfg.calibration_frames) else cfg.keyframe_weight
        albedo_b = self.refl_mean + np.einsum("k,ksc->sc", beta, self.refl_rows)
        w, sums = vis, {}
        for _ in range(cfg.rounds if update else 1):
            gamma = self._light(Y_b, albedo_b, obs, w, gamma0, w_light)
            if not update:
                break
            S_b = Y_b @ gamma.T
            Hb, gb = self._base_evidence(S_b, obs, w)
            weight = st.weight + frame_weight
            sums = {"H_beta": st.add("H_beta", Hb, frame_weight), "g_beta": st.add("g_beta", gb, frame_weight)}
            beta = np.linalg.solve(sums["H_beta"] + weight * self.beta_prior, sums["g_beta"])
            albedo_b = self.refl_mean + np.einsum("k,ksc->sc", beta, self.refl_rows)
            w = self._robust(albedo_b * S_b - obs, vis)
        if update and self.corr_rows is not None:  # the correctives explain what the base level leaves
            Hd, gd, C = self._corrective_evidence(Y_f @ gamma.T, obs, w)
            sums.update({k: st.add(k, v, frame_weight) for k, v in (("H_delta", Hd), ("g_delta", gd), ("C", C))})
            delta = np.linalg.solve(sums["H_delta"] + weight * self.corrective_prior,
                                    sums["g_delta"] - sums["C"] @ beta)
        if not all(np.isfinite(a).all() for a in (gamma, beta, delta, *sums.values())):
            return x  # a degenerate frame: the encoder's appearance, and the person's evidence untouched
        if update:
            for k, v in sums.items():
                setattr(st, k, v)
            st.weight, st.beta, st.delta = weight, beta, delta
        st.gamma = gamma
        x[sl["gamma"]] = gamma.ravel()
        x[sl["beta"]] = beta
        if self.corr_rows is not None:
            x[sl["delta_r"]] = delta
        return x
