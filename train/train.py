"""Self-supervised multi-level training: stage 1 base level, stage 2 with learned correctives.

    python -m train.train --cache CACHE --out RUN [--config train/configs/cpu.yaml] [--set key=value ...]

Resumes from RUN/ckpt_last.pt when it exists. Writes RUN/config.yaml (the resolved config), log.csv
(every term of every step), val.csv, checkpoints, and TensorBoard events when tensorboard is installed.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from facetrack.errors import FacetrackError
from facetrack.evaluation.hardware import machine
from facetrack.model.correspondence import Correspondence
from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel
from facetrack.net.encoder import Encoder
from facetrack.net.weights import load_reflectance, load_weights
from facetrack.render.camera import Camera
from facetrack.render.formation import views
from facetrack.render.losses import landmark_points, photometric_l21
from train.config import TrainConfig, load_config
from train.data import CropDataset
from train.losses import TrainingLoss

TERMS = ("landmark", "photo_base", "photo_final", "prior", "smooth", "stabilize", "sparsity", "constancy", "dense",
         "distill", "anchor")
LOG_FIELDS = ("stage", "step", "epoch", "time_s", "total", *TERMS)  # stage 1 leaves the corrective terms empty


def make_optimizer(cfg: TrainConfig, encoder: Encoder, model: MultiLevelModel, stage: int) -> torch.optim.Optimizer:
    o = cfg.optimizer
    groups = [{"params": list(encoder.parameters()), "lr": o.lr_encoder}]
    if stage >= 2:  # stage 3 means finished; its checkpoint holds the stage-2 optimizer
        groups += [{"params": list(model.geo_corrective.parameters()), "lr": o.lr_geometry},
                   {"params": list(model.refl_corrective.parameters()), "lr": o.lr_reflectance}]
    if o.name == "adadelta":
        return torch.optim.Adadelta(groups)
    if o.name == "adam":
        return torch.optim.Adam(groups)
    raise FacetrackError(f"unknown optimizer {o.name!r} (adadelta or adam)")


def _save_atomic(obj: dict, path: Path) -> None:
    """A kill mid-write leaves the previous checkpoint intact."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def validate(encoder: Encoder, loss: TrainingLoss, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Landmark error (crop pixels, confidence-weighted) and photometric error per level (the paper's figure)."""
    encoder.eval()
    model, cam = loss.model, loss.camera
    sums = {"landmark_px": 0.0, "photo_base": 0.0, "photo_final": 0.0}
    n = 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        p = model.params(encoder(batch["image"]))
        vb, vf = views(model(p), p, model.triangles, cam)
        idx = loss.table.slide(vb, batch["landmarks"], cam)
        d = (landmark_points(vb, idx) - batch["landmarks"]).norm(dim=-1)
        c = batch["confidence"]
        sums["landmark_px"] += ((d * c).sum(-1) / c.sum(-1).clamp(min=1e-6)).sum().item()
        sums["photo_base"] += photometric_l21(batch["image"], vb, model.photo_mask).sum().item()
        sums["photo_final"] += photometric_l21(batch["image"], vf, model.photo_mask).sum().item()
        n += batch["image"].shape[0]
    encoder.train()
    return {k: v / max(n, 1) for k, v in sums.items()}


class Trainer:
    """Holds the run's state so that it can be checkpointed and resumed at any step."""

    def __init__(self, cfg: TrainConfig, cache: Path, out: Path, model_file: Path | None = None,
                 reflectance: Path | None = None) -> None:
        self.cfg, self.out = cfg, out
        out.mkdir(parents=True, exist_ok=True)
        want = cfg.device
        self.device = torch.device("cuda" if want == "auto" and torch.cuda.is_available() else
                                   ("cpu" if want == "auto" else want))
        torch.manual_seed(cfg.seed)
        face = FaceModel.load(model_file)
        if reflectance is None and cfg.init and (Path(cfg.init) / "reflectance.npz").is_file():
            # Fine-tuning: the init encoder's reflectance weights mean something only in its own basis.
            reflectance = Path(cfg.init) / "reflectance.npz"
        if reflectance is not None:
            face = load_reflectance(face, reflectance)
        self.face = face
        c = cfg.correctives
        self.model = MultiLevelModel(face, c.n_geometry, c.n_reflectance, c.kind).to(self.device)
        self.encoder = Encoder(self.model.layout, cfg.encoder).to(self.device)
        self.teacher: Encoder | None = None  # the init encoder, frozen: target of the anchor term
        if cfg.init:
            self._init_from(Path(cfg.init))
            if cfg.weights.anchor:
                self.teacher = copy.deepcopy(self.encoder).requires_grad_(False)
        self._train_mode()
        self.loss = TrainingLoss(face, self.model, Camera(), cfg.weights).to(self.device)
        if cfg.photometric not in ("auto", "points", "raster"):
            raise FacetrackError(f"photometric must be auto, points or raster, not {cfg.photometric!r}")
        if cfg.photometric == "raster" or (cfg.photometric == "auto" and self.device.type == "cuda"):
            from facetrack.render.raster_nv import NvdiffrastRasterizer

            self.loss.raster = NvdiffrastRasterizer(self.loss.camera.width, self.loss.camera.height)
        self.train_set = CropDataset(cache, "train", cfg.augment, cfg.seed, Correspondence.load().mirror)
        val = CropDataset(cache, "val")
        if len(self.train_set) == 0:
            raise FacetrackError(f"the cache {cache} has no training images")
        keep = list(range(min(len(val), cfg.max_val)))
        self.val_loader = DataLoader(torch.utils.data.Subset(val, keep), batch_size=16) if keep else None
        self.loader = DataLoader(self.train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=
                                 len(self.train_set) >= cfg.batch_size, num_workers=cfg.workers,
                                 generator=torch.Generator().manual_seed(cfg.seed))
        self.stage, self.step, self.epoch = 1, 0, 0
        self.t0 = time.time()  # wall time counts across resumes (see resume)
        self.optimizer = make_optimizer(cfg, self.encoder, self.model, 1)
        self.history: list[dict] = []
        self.val_history: list[dict] = []
        (out / "machine.json").write_text(json.dumps(machine(), indent=1))  # the model card's hardware
        (out / "config.yaml").write_text(yaml.safe_dump({**cfg.to_dict(), "cache": str(cache),
                                                         "model_file": str(model_file),
                                                         "reflectance": str(reflectance)}))

    def _init_from(self, folder: Path) -> None:
        """Start from a weights folder (the shipped model, say) instead of from scratch: fine-tuning on your
        own footage. Its encoder and correctives must have this config's shapes."""
        w = load_weights(folder, self.face)
        if w.encoder.backbone_name != self.cfg.encoder or w.model.layout != self.model.layout:
            raise FacetrackError(f"init weights {folder} have encoder {w.encoder.backbone_name!r} and "
                                 f"{w.model.layout.size} parameters; this config: {self.cfg.encoder!r} and "
                                 f"{self.model.layout.size} (match encoder and correctives sizes)")
        self.encoder.load_state_dict(w.encoder.state_dict())
        self.model.geo_corrective.load_state_dict(w.model.geo_corrective.state_dict())
        self.model.refl_corrective.load_state_dict(w.model.refl_corrective.state_dict())

    def _train_mode(self) -> None:
        """Train mode, with the batch-norm layers (and the teacher) as at inference when freeze_bn is set."""
        self.encoder.train()
        if self.cfg.freeze_bn:
            for m in self.encoder.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
            if self.teacher is not None:
                self.teacher.eval()

    def state(self) -> dict:
        return {"encoder": self.encoder.state_dict(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "stage": self.stage, "step": self.step,
                "epoch": self.epoch, "cfg": self.cfg.to_dict(), "val_history": self.val_history,
                "rng": torch.get_rng_state(), "elapsed_s": self.elapsed()}

    def elapsed(self) -> float:
        return time.time() - self.t0

    def resume(self, path: Path) -> None:
        st = torch.load(path, map_location=self.device, weights_only=False)
        self.encoder.load_state_dict(st["encoder"])
        self.model.load_state_dict(st["model"])
        self.stage, self.step, self.epoch = st["stage"], st["step"], st["epoch"]
        self.optimizer = make_optimizer(self.cfg, self.encoder, self.model, self.stage)
        self.optimizer.load_state_dict(st["optimizer"])
        self.val_history = st["val_history"]
        torch.set_rng_state(st["rng"].cpu())  # map_location moved it to the device
        self.t0 = time.time() - st.get("elapsed_s", 0.0)
        for name in ("log.csv", "val.csv"):  # steps after the checkpoint are run again: drop their old rows
            self._truncate_log(self.out / name)

    def _truncate_log(self, path: Path) -> None:
        if not path.is_file():
            return
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
            fields = list(rows[0]) if rows else None
        keep = [r for r in rows if (int(r["stage"]), int(r["step"])) <= (self.stage, self.step)]
        if fields and len(keep) < len(rows):
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(keep)
            os.replace(tmp, path)

    def _log(self, row: dict, name: str, fieldnames: tuple[str, ...] | None = None) -> None:
        path = self.out / name
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(fieldnames or row), restval="")
            if new:
                w.writeheader()
            w.writerow(row)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.teacher is not None:
            with torch.no_grad():  # in the student's mode (see _train_mode): the same output at step 0
                batch["anchor"] = self.teacher(batch["image"])
        terms, _ = self.loss(self.encoder(batch["image"]), batch, self.stage)
        for name, value in terms.items():
            if not torch.isfinite(value):
                raise FloatingPointError(f"loss term '{name}' is {value.item()} at stage {self.stage} step "
                                         f"{self.step}; the last checkpoint is intact")
        total = self.loss.total(terms)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        return {"total": total.item(), **{k: v.item() for k, v in terms.items()}}

    def run(self, progress: bool = True, writer=None) -> dict:
        cfg = self.cfg
        steps = {1: cfg.stage1_steps, 2: cfg.stage2_steps}
        per_epoch = max(len(self.loader), 1)
        val_every = per_epoch if cfg.validate_every == "epoch" else int(cfg.validate_every)
        bar = tqdm(total=steps[1] + steps[2], initial=self.step + (steps[1] if self.stage == 2 else 0),
                   disable=not progress, desc="train")
        while self.stage <= 2:
            while self.step < steps[self.stage]:
                for batch in self.loader:
                    if self.step >= steps[self.stage]:
                        break
                    row = self.train_step(batch)
                    self.step += 1
                    bar.update()
                    bar.set_postfix(stage=self.stage, loss=f"{row['total']:.4f}", photo=f"{row['photo_base']:.3f}")
                    self._log({"stage": self.stage, "step": self.step, "epoch": self.epoch,
                               "time_s": round(self.elapsed(), 2), **row}, "log.csv", LOG_FIELDS)
                    if writer is not None:
                        for k, v in row.items():
                            writer.add_scalar(f"stage{self.stage}/{k}", v, self.step)
                    if self.step % val_every == 0 or self.step == steps[self.stage]:
                        self._validate(writer)
                    if self.step % cfg.checkpoint_every == 0:
                        _save_atomic(self.state(), self.out / "ckpt_last.pt")
                else:
                    self.epoch += 1
            _save_atomic(self.state(), self.out / f"stage{self.stage}.pt")
            if self.stage == 1:
                self.stage, self.step = 2, 0
                self.optimizer = make_optimizer(cfg, self.encoder, self.model, 2)
            else:
                self.stage = 3
            _save_atomic(self.state(), self.out / "ckpt_last.pt")
        bar.close()
        return self.val_history[-1] if self.val_history else {}

    def _validate(self, writer) -> None:
        if self.val_loader is None:
            return
        v = validate(self.encoder, self.loss, self.val_loader, self.device)
        self._train_mode()
        row = {"stage": self.stage, "step": self.step, **{k: round(x, 5) for k, x in v.items()}}
        self.val_history.append(row)
        self._log(row, "val.csv")
        if writer is not None:
            for k, x in v.items():
                writer.add_scalar(f"val/{k}", x, self.step + (self.cfg.stage1_steps if self.stage == 2 else 0))


def tensorboard_writer(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"))


def train(cfg: TrainConfig, cache: Path, out: Path, model_file: Path | None = None, reflectance: Path | None = None,
          resume: bool = True, progress: bool = True) -> Trainer:
    trainer = Trainer(cfg, cache, out, model_file, reflectance)
    if resume and (out / "ckpt_last.pt").is_file():
        trainer.resume(out / "ckpt_last.pt")
    trainer.run(progress, tensorboard_writer(out))
    return trainer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True, help="folder written by train.prepare")
    ap.add_argument("--out", type=Path, required=True, help="run folder (resumed when it holds a checkpoint)")
    ap.add_argument("--config", type=Path, help="YAML config (default: train/configs/paper.yaml)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    ap.add_argument("--model", type=Path, help="face model file (default: the user cache)")
    ap.add_argument("--reflectance", type=Path, help="base reflectance model from train.reflectance")
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args(argv)
    try:
        trainer = train(load_config(args.config, args.set), args.cache, args.out, args.model, args.reflectance,
                        resume=not args.no_resume)
    except (FacetrackError, FloatingPointError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    print(f"done: {trainer.val_history[-1] if trainer.val_history else 'no validation split'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
