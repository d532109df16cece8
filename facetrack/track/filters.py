"""Causal temporal filtering of the coefficient stream: the One-Euro filter (Casiez et al., CHI 2012).

A low-pass filter whose cutoff rises with the signal's speed: still faces get heavy smoothing (no jitter),
fast motion gets little (no lag). Applied per channel to pose and expressions after the per-frame fit;
the fit itself starts from the unfiltered previous frame, so filtering never feeds back into tracking.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """Vector One-Euro filter; `min_cutoff` (Hz) sets smoothing at rest, `beta` how fast it opens with speed."""

    def __init__(self, min_cutoff: float | np.ndarray, beta: float | np.ndarray, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = np.asarray(min_cutoff), np.asarray(beta), d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    def reset(self) -> None:
        self.x = self.dx = self.t = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.t
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(np.asarray(self.d_cutoff), dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, dt) * (x - self.x)
        self.t = t
        return self.x.copy()


BOX_FILTER = (1.0, 0.02)  # crop box (cx, cy, side in image pixels): min_cutoff Hz, beta per pixel/s


class CoefficientFilter:
    """One-Euro filters for rotation (rad), translation (cm) and expressions, tuned on the shared videos; each
    (min_cutoff, beta[, d_cutoff]). The expressions' speed estimate has a 10 Hz cutoff, not the usual 1 Hz: a
    blink or a mouth opening lasts a few frames, and with 1 Hz the filter opened only after the peak (jawOpen
    0.3 frames behind the lip gap, 0.1 now; `eval video`'s expression_lag_frames)."""

    def __init__(self, rot: tuple[float, ...] = (1.5, 0.8), trans: tuple[float, ...] = (1.5, 0.05),
                 exp: tuple[float, ...] = (3.0, 1.5, 10.0)) -> None:
        self.filters = {"rot": OneEuro(*rot), "trans": OneEuro(*trans), "alpha_exp": OneEuro(*exp)}

    def reset(self) -> None:
        for f in self.filters.values():
            f.reset()

    def __call__(self, x: np.ndarray, slices: dict[str, slice], t: float) -> np.ndarray:
        out = np.asarray(x, np.float32).copy()
        for name, f in self.filters.items():
            v = f(out[slices[name]], t)
            out[slices[name]] = np.clip(v, 0, 1) if name == "alpha_exp" else v
        return out
