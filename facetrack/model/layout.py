"""The parameter vector x: one documented order, shared by the encoder, fitting, recording and the app.

| block | symbol | size | units / range |
| --- | --- | --- | --- |
| identity | alpha_id | K_id (100) | ICT PCA weights, prior N(0, sigma_id^2) |
| expression | alpha_exp | K_exp (53) | ARKit blendshape weights, [0, 1] |
| reflectance | beta | K_r (80) | reflectance PCA weights, prior N(0, sigma_r^2) |
| geometry correctives | delta_g | C_g (500) | corrective coefficients |
| reflectance correctives | delta_r | C_r (500) | corrective coefficients |
| rotation | rot | 3 | Euler angles (pitch x, yaw y, roll z) in radians; R = Rz Ry Rx |
| translation | trans | 3 | centimetres, camera frame (x right, y up, camera looks down -z) |
| lighting | gamma | 27 | 3-band SH, 9 coefficients per RGB channel, channel-major |
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

BLOCKS = ("alpha_id", "alpha_exp", "beta", "delta_g", "delta_r", "rot", "trans", "gamma")
AFTER_CORRECTIVES = {"rot": 3, "trans": 3, "gamma": 27}  # the blocks of fixed size after the correctives
TAIL = sum(AFTER_CORRECTIVES.values())
POSE = slice(-TAIL, -TAIL + AFTER_CORRECTIVES["rot"] + AFTER_CORRECTIVES["trans"])  # rot, trans in any layout


@dataclass(frozen=True)
class ParamLayout:
    """Sizes of each block of x; `split` cuts a (B, D) tensor into named views."""

    n_id: int = 100
    n_exp: int = 53
    n_refl: int = 80
    n_cg: int = 500
    n_cr: int = 500

    @property
    def sizes(self) -> dict[str, int]:
        return {"alpha_id": self.n_id, "alpha_exp": self.n_exp, "beta": self.n_refl, "delta_g": self.n_cg,
                "delta_r": self.n_cr, **AFTER_CORRECTIVES}

    @property
    def size(self) -> int:
        return sum(self.sizes.values())

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name in BLOCKS:
            out[name] = slice(start, start + self.sizes[name])
            start += self.sizes[name]
        return out

    def split(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named views of x (B, D); gamma comes back as (B, 3, 9)."""
        if x.shape[-1] != self.size:
            raise ValueError(f"parameter vector has {x.shape[-1]} entries, layout expects {self.size}")
        parts = {name: x[..., s] for name, s in self.slices().items()}
        parts["gamma"] = parts["gamma"].reshape(*x.shape[:-1], 3, 9)
        return parts

    def without_correctives(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every block but the correctives of a (B, D') vector whose corrective blocks may have other sizes than
        this layout's (a label made with weights whose correctives grew since): the correctives sit between
        the blocks of fixed size, so splitting by this layout with the difference put into the reflectance
        correctives finds all the others."""
        grown = replace(self, n_cr=self.n_cr + x.shape[-1] - self.size)
        if grown.n_cr < 0:
            raise ValueError(f"parameter vector has {x.shape[-1]} entries, fewer than this layout's fixed blocks")
        return {k: v for k, v in grown.split(x).items() if k not in ("delta_g", "delta_r")}

    @staticmethod
    def widen(x: np.ndarray, width: int) -> np.ndarray:
        """(N, D) vectors to (N, width), D <= width, with zeros added to the end of the reflectance correctives:
        vectors from models whose correctives differ (a cache continued after the correctives grew) then line
        up, and `without_correctives` reads every other block of them alike."""
        if x.shape[-1] > width:
            raise ValueError(f"cannot widen {x.shape[-1]} entries to {width}")
        cut = x.shape[-1] - TAIL
        return np.concatenate([x[..., :cut], np.zeros((*x.shape[:-1], width - x.shape[-1]), x.dtype),
                               x[..., cut:]], axis=-1)

    def join(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inverse of split; missing blocks are zero."""
        ref = next(iter(parts.values()))
        batch = ref.shape[0]
        blocks = [parts[n].reshape(batch, -1) if n in parts
                  else ref.new_zeros(batch, self.sizes[n]) for n in BLOCKS]
        return torch.cat(blocks, dim=-1)

    def table(self) -> list[tuple[str, int, int]]:
        """(name, offset, size) rows, for docs and file headers."""
        return [(n, s.start, s.stop - s.start) for n, s in self.slices().items()]
