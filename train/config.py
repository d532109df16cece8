"""The training configuration: the YAML files in train/configs/ parsed into one typed object.

Unknown keys are a one-line error (a typo must not silently train with a default), and `--set key=value`
overrides use the same dotted names as the YAML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from facetrack.errors import FacetrackError
from train.data import Augment
from train.losses import LossWeights

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class Correctives:
    kind: str = "linear"  # linear (the paper's best) or mlp
    n_geometry: int = 500
    n_reflectance: int = 500


@dataclass
class Optimizer:
    name: str = "adadelta"  # adadelta (the paper) or adam
    lr_encoder: float = 0.001
    lr_geometry: float = 0.005
    lr_reflectance: float = 0.01


@dataclass
class TrainConfig:
    encoder: str = "resnet18"
    correctives: Correctives = field(default_factory=Correctives)
    batch_size: int = 5
    workers: int = 2
    optimizer: Optimizer = field(default_factory=Optimizer)
    stage1_steps: int = 200000
    stage2_steps: int = 200000
    validate_every: int | str = "epoch"  # or a number of steps
    checkpoint_every: int = 1000
    max_val: int = 500  # validation images used at most
    seed: int = 0
    device: str = "auto"  # cuda when available
    photometric: str = "auto"  # auto (rasterized by nvdiffrast on CUDA, point-sampled elsewhere), points, raster
    weights: LossWeights = field(default_factory=LossWeights)  # loss weights
    augment: Augment = field(default_factory=Augment)
    init: str | None = None  # a weights folder to fine-tune from
    # Fine-tuning: keep the init encoder's batch-norm statistics (BN layers run as at inference), so that what
    # the losses constrain in training is what the app runs; new data would otherwise shift them unchecked.
    freeze_bn: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _build(cls, d or {}, "")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def changed_weights(self) -> dict:
        """Loss weights that differ from the defaults (for the model card)."""
        default = LossWeights()
        return {f.name: getattr(self.weights, f.name) for f in fields(LossWeights)
                if getattr(self.weights, f.name) != getattr(default, f.name)}


def _build(cls, d: dict, prefix: str):
    if not isinstance(d, dict):
        raise FacetrackError(f"config key {prefix.rstrip('.') or 'root'} must be a mapping")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise FacetrackError(f"unknown config key(s): {', '.join(prefix + k for k in unknown)}")
    kwargs = {}
    for name, value in d.items():
        default = known[name].default_factory() if known[name].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_config(path: Path | None, overrides: list[str]) -> TrainConfig:
    """A YAML config merged with key=value overrides (values parsed as YAML, dotted keys for nesting)."""
    try:
        raw = yaml.safe_load((path or CONFIG_DIR / "paper.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise FacetrackError(f"cannot read config {path}: {e}") from None
    for item in overrides:
        key, _, value = item.partition("=")
        node = raw
        *parents, leaf = key.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = yaml.safe_load(value)
    return TrainConfig.from_dict(raw)
