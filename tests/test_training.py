"""Training on CPU end to end: prepare a cache from real photos, a video and synthetic faces, build a
reflectance model, train both stages, resume, export, and load back what the app loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facetrack.errors import FacetrackError
from facetrack.model.facemodel import FaceModel
from facetrack.net.weights import load_weights
from facetrack.render.synthetic import generate
from train.data import CropDataset
from train.export import export
from train.prepare import prepare
from train.reflectance import build
from train.train import Trainer, load_config, train

TINY = ["encoder=fast", "correctives.n_geometry=8", "correctives.n_reflectance=8", "batch_size=4", "workers=0",
        "stage1_steps=24", "stage2_steps=8", "validate_every=8", "checkpoint_every=4", "optimizer.name=adam",
        "optimizer.lr_encoder=0.002", "device=cpu"]


@pytest.fixture(scope="module")
def cache(face: FaceModel, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("photos")
    photos = sorted((shared_dir / "faces" / "utkface").glob("*.jpg"))[:14]
    for p in photos:
        shutil.copy(p, src / p.name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    bad_video = src.parent / "broken.mp4"
    bad_video.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    synth = generate(face, tmp_path_factory.mktemp("synth"), 6, src)
    out = tmp_path_factory.mktemp("cache")
    video = shared_dir / "videos" / "liveportrait_d0.mp4"
    index = prepare(out, [src, synth, video, bad_video], video_step=10, max_frames=6, val_fraction=0.25,
                    progress=False)
    assert index["rejected"].get("unreadable", 0) == 2  # the broken photo and the broken video, not fatal
    return out


def test_prepare_counts_and_resume(cache: Path, shared_dir: Path) -> None:
    index = json.loads((cache / "index.json").read_text())
    total = sum(index["counts"].values())
    assert total >= 18 and index["counts"].get("val", 0) >= 1
    train_set = CropDataset(cache, "train")
    item = train_set[0]
    assert item["image"].shape == (3, 240, 240) and item["landmarks"].shape == (68, 2)
    assert (item["landmarks"] > 0).all() and (item["landmarks"] < 240).all()
    assert 0 <= float(item["confidence"].min()) <= float(item["confidence"].max()) <= 1
    again = prepare(cache, [shared_dir / "videos" / "liveportrait_d0.mp4"], video_step=10, max_frames=6,
                    progress=False)
    assert sum(again["counts"].values()) == total  # re-running skips finished work


def test_train_resume_export(cache: Path, face: FaceModel, model_file: Path, tmp_path: Path) -> None:
    refl = tmp_path / "reflectance.npz"
    info = build(face, cache, refl, images=8, modes=4, steps=30, progress=False)
    assert info["modes"] == 4 and 0.1 < np.mean(info["mean_rgb"]) < 0.9

    cfg = load_config(None, TINY)
    run = tmp_path / "run"
    trainer = train(cfg, cache, run, model_file, refl, progress=False)
    log = np.genfromtxt(run / "log.csv", delimiter=",", names=True)
    stage1 = log["total"][log["stage"] == 1]
    assert stage1[-6:].mean() < 0.8 * stage1[:6].mean()  # losses fall
    assert (run / "val.csv").is_file() and (run / "config.yaml").is_file() and (run / "stage2.pt").is_file()
    v = trainer.val_history[-1]
    assert v["stage"] == 2 and np.isfinite([v["photo_base"], v["photo_final"], v["landmark_px"]]).all()

    # Resume: a new trainer restored from the checkpoint takes exactly the same next step.
    batch = next(iter(torch.utils.data.DataLoader(CropDataset(cache, "train"), batch_size=4)))
    assert trainer.stage == 3  # finished
    trainer.stage = 2
    torch.manual_seed(5)
    first = trainer.train_step(batch)
    resumed = Trainer(cfg, cache, run, model_file, refl)
    resumed.resume(run / "ckpt_last.pt")
    assert resumed.stage == 3 and resumed.step == trainer.step
    resumed.stage = 2
    trainer.resume(run / "ckpt_last.pt")
    trainer.stage = 2
    torch.manual_seed(5)
    a = trainer.train_step(batch)
    torch.manual_seed(5)
    b = resumed.train_step(batch)
    assert a == pytest.approx(b, rel=1e-5) and first["total"] == pytest.approx(a["total"], rel=1e-5)

    # Export, then load exactly what the app loads: same outputs (correctives stored in float16).
    out = tmp_path / "weights"
    bench = Path(__file__).parents[1] / "docs" / "results" / "bench.json"  # the committed CPU bench
    card = export(run, refl, out, model_file, bench_files=[bench])
    assert card["onnx_max_abs_diff"] < 1e-3 and (out / "validation.png").is_file() and (out / "curves.png").is_file()
    assert card["hardware"]["cpu_count"] >= 1 and "cuda" in card["hardware"]
    speed = {r["backend"]: r for r in card["encoder_speed_batch1"]}
    assert speed["onnxruntime-cpu"]["ms"] > 0 and "Encoder speed, batch 1" in (out / "model_card.md").read_text()
    assert "core CPU" in speed["onnxruntime-cpu"]["machine"]
    # The 8-bit encoder: written with its figures in the card, or (this tiny run strays too far) neither.
    doc = json.loads((out / "model_card.json").read_text())
    assert (out / "encoder.int8.onnx").is_file() == ("int8_encoder" in doc)
    with pytest.raises(FacetrackError, match="bench file"):
        export(run, refl, tmp_path / "w2", model_file, bench_files=[tmp_path / "missing.json"])
    w = load_weights(out, face=FaceModel.load(model_file))
    trainer.resume(run / "ckpt_last.pt")  # the state that was exported (the steps above moved it on)
    trainer.encoder.eval()
    with torch.no_grad():
        x_ref = trainer.encoder(batch["image"])
        x_app = w.encoder(batch["image"])
        assert torch.allclose(x_ref, x_app, atol=1e-5)
        ref = trainer.model(trainer.model.params(x_ref))
        app = w.model(w.model.params(x_app))
    assert torch.allclose(ref.v_final, app.v_final, atol=1e-3) and torch.allclose(ref.r_final, app.r_final, atol=1e-3)
    assert "photometric error, final level" in (out / "model_card.md").read_text()

    # Fine-tuning starts from exported weights: the new trainer's encoder and correctives are the export's.
    tuned = Trainer(load_config(None, [*TINY, f"init={out}"]), cache, tmp_path / "tune", model_file, refl)
    tuned.encoder.eval()
    with torch.no_grad():
        x_tuned = tuned.encoder(batch["image"])
        tuned_levels = tuned.model(tuned.model.params(x_tuned))
    assert torch.allclose(x_tuned, x_app, atol=1e-6)
    assert torch.allclose(tuned_levels.v_final, app.v_final, atol=1e-4)
    # The appearance anchor: the frozen init encoder's reflectance and lighting are the target, so the term
    # is zero before the first update and grows once the student moves.
    anchored = Trainer(load_config(None, [*TINY, f"init={out}", "weights.anchor=1.0"]), cache, tmp_path / "anc",
                       model_file)  # no reflectance given: the init folder's, in which its encoder's weights mean
    assert np.allclose(anchored.face.refl_mean, w.face.refl_mean)  # something (not the model file's placeholder)
    steps = [anchored.train_step(batch) for _ in range(3)]
    assert steps[0]["anchor"] == pytest.approx(0.0, abs=1e-10) and steps[2]["anchor"] > 1e-8
    # freeze_bn: the batch-norm statistics stay the init encoder's (training runs them as inference does)
    frozen = Trainer(load_config(None, [*TINY, f"init={out}", "weights.anchor=1.0", "freeze_bn=true"]), cache,
                     tmp_path / "frz", model_file)
    stats = {k: v.clone() for k, v in frozen.encoder.state_dict().items() if "running" in k}
    assert frozen.train_step(batch)["anchor"] == pytest.approx(0.0, abs=1e-10)
    frozen.train_step(batch)
    after = frozen.encoder.state_dict()
    assert stats and all(torch.equal(v, after[k]) for k, v in stats.items())
    moved = anchored.encoder.state_dict()  # without freeze_bn, the same init's statistics moved
    assert not all(torch.equal(v, moved[k]) for k, v in stats.items())
    with pytest.raises(FacetrackError, match="init weights"):
        Trainer(load_config(None, [*TINY, f"init={out}", "correctives.n_geometry=9"]), cache, tmp_path / "t2",
                model_file, refl)


def test_resume_drops_log_rows_after_the_checkpoint(cache: Path, model_file: Path, tmp_path: Path) -> None:
    """A run killed after its last checkpoint runs those steps again: their old rows must not stay twice."""
    cfg = load_config(None, TINY)
    run = tmp_path / "run"
    train(cfg, cache, run, model_file, progress=False)
    stages = np.genfromtxt(run / "log.csv", delimiter=",", names=True)["stage"]
    assert (stages == 2).sum() == 8
    Trainer(cfg, cache, run, model_file).resume(run / "stage1.pt")  # as if killed just after stage 1
    log = np.genfromtxt(run / "log.csv", delimiter=",", names=True)
    val = np.genfromtxt(run / "val.csv", delimiter=",", names=True)
    assert (log["stage"] == 1).sum() == 24 and (log["stage"] == 2).sum() == 0 and (val["stage"] == 1).all()
    with pytest.raises(FacetrackError, match="photometric"):
        Trainer(load_config(None, [*TINY, "photometric=pixels"]), cache, tmp_path / "bad", model_file)


def test_nan_names_the_term(cache: Path, model_file: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_config(None, TINY), cache, tmp_path / "run", model_file)
    batch = next(iter(torch.utils.data.DataLoader(CropDataset(cache, "train"), batch_size=2)))
    batch["landmarks"][0, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="'landmark'"):
        trainer.train_step(batch)


def test_augment_moves_landmarks_with_the_image() -> None:
    """Dots drawn at the landmarks stay under the landmarks after flips, rotations, scaling and shifts."""
    import cv2

    from train.data import Augment

    rng = np.random.default_rng(0)
    lm = rng.uniform(40, 200, (68, 2)).astype(np.float32)
    img = np.zeros((240, 240, 3), np.uint8)
    for x, y in lm:
        cv2.circle(img, (int(x), int(y)), 3, (255, 255, 255), -1)  # pixel (i, j) covers [i, i+1): centre i + 0.5
    conf = np.linspace(0, 1, 68, dtype=np.float32)
    aug = Augment(flip=0.5, rotate_deg=25, scale=0.1, shift_px=6)
    flips = 0
    for _ in range(12):
        out, lm2, conf2, change = aug(img, lm, conf, rng, dense=lm.copy())
        inside = ((lm2 > 3) & (lm2 < 237)).all(1)
        bright = out[lm2[inside, 1].astype(int), lm2[inside, 0].astype(int), 0]
        assert (bright > 128).mean() > 0.95
        assert sorted(conf2.tolist()) == sorted(conf.tolist())
        flips += change.flipped
        assert change.flipped == (not np.array_equal(conf2, conf)) and abs(change.angle_deg) <= 25
        if not change.flipped:  # dense points move exactly like the 68 (the same affine map)
            assert np.allclose(change.dense, lm2, atol=1e-4)
    assert 0 < flips < 12  # some mirror images (confidences follow their points), not all
    pairs = np.arange(68)[::-1].copy()  # any involution: dense points swap partners and mirror with the image
    _, lm4, _, change = Augment(flip=1.0)(img, lm, conf, rng, dense=lm.copy(), mirror=pairs)
    assert change.flipped and np.allclose(change.dense[:, 0], 240 - lm[pairs, 0]) and \
        np.allclose(change.dense[:, 1], lm[pairs, 1])
    same, lm3, _, change = Augment()(img, lm, conf, rng)
    assert np.array_equal(same, img) and np.array_equal(lm3, lm)
    assert not change.flipped and change.angle_deg == 0.0 and change.dense is None


def test_labelled_cache_and_distillation(face: FaceModel, model_file: Path, weights: Path, shared_dir: Path,
                                         landmarker: Path, tmp_path: Path) -> None:
    """`train.prepare --landmarker` stores MediaPipe's dense landmarks and the fit's parameters; the dense and
    distillation terms are zero-ish at the pseudo-label itself (known answers), the rotation target turns
    with the in-plane augmentation, and a short fine-tune with both terms runs and lowers them."""
    from train.losses import LossWeights, TrainingLoss
    from train.prepare import labelling_tracker

    src = tmp_path / "photos"
    src.mkdir()
    for p in sorted((shared_dir / "faces" / "utkface").glob("*.jpg"))[:10]:
        shutil.copy(p, src / p.name)
    cache = tmp_path / "cache"
    tracker = labelling_tracker(landmarker, weights, model_file)
    index = prepare(cache, [src, shared_dir / "videos" / "liveportrait_d0.mp4"], video_step=10, max_frames=6,
                    val_fraction=0.25, progress=False, tracker=tracker)
    assert "labels" in index and sum(index["counts"].values()) >= 12
    with pytest.raises(FacetrackError, match="built with --landmarker"):
        prepare(cache, [src], progress=False)
    # Synthetic faces join a labelled cache with their exact labels (wide yaw, which photos lack).
    from facetrack.model.correspondence import MP68
    from facetrack.model.layout import ParamLayout
    from facetrack.render.synthetic import SynthConfig

    synth = generate(face, tmp_path / "synth", 4, src, SynthConfig(seed=3, yaw=70))
    before = sum(index["counts"].values())
    index = prepare(cache, [synth], val_fraction=0.0, progress=False, tracker=tracker)
    assert sum(index["counts"].values()) == before + 4
    every = CropDataset(cache, "train")
    mine = np.flatnonzero(["synth/" in n for n in every.names])
    z = np.load(synth / "synth.npz")
    lay, made = tracker.model.layout.slices(), ParamLayout(*z["layout"]).slices()
    assert np.allclose(every.pseudo[mine][:, lay["alpha_exp"]], z["params"][:, made["alpha_exp"]], atol=1e-6)
    assert np.allclose(every.pseudo[mine][:, lay["rot"]], z["params"][:, made["rot"]], atol=1e-6)
    assert np.abs(np.degrees(z["params"][:, made["rot"]][:, 1])).max() <= 70
    inner = np.linalg.norm(every.dense[mine][:, MP68[17:]] - every.landmarks[mine][:, 17:], axis=-1)
    assert np.median(inner) < 4.0  # the same exact face seen through both landmark sets, in crop pixels
    data = CropDataset(cache, "train")
    assert data.dense.shape == (len(data), 468, 2) and data.pseudo.shape[0] == len(data)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=4)))
    assert batch["dense"].shape == (4, 468, 2) and (batch["labelled"] == 1).all()

    w = load_weights(weights, FaceModel.load(model_file))
    loss = TrainingLoss(w.face, w.model, tracker.camera, LossWeights(dense=0.01, distill=1.0))
    p = w.model.params(batch["pseudo"])
    assert loss.distill_term(p, batch).item() == pytest.approx(0.0, abs=1e-10)
    turned = {**batch, "roll_add": torch.full((4,), 0.1)}
    assert loss.distill_term(p, turned).item() == pytest.approx(0.01, rel=1e-4)  # (0.1 rad)^2
    from facetrack.render.formation import views

    vb, _ = views(w.model(p), p, w.model.triangles, tracker.camera)
    assert loss.dense_term(vb, batch).item() < 30.0  # px^2: the fit's own residual, weighted

    cfg = load_config(None, [*TINY, f"init={weights}", "encoder=fast", "correctives.n_geometry=100",
                             "correctives.n_reflectance=200", "weights.dense=0.01", "weights.distill=5",
                             "stage1_steps=12", "stage2_steps=4"])
    run = tmp_path / "run"
    train(cfg, cache, run, model_file, weights / "reflectance.npz", progress=False)
    log = np.genfromtxt(run / "log.csv", delimiter=",", names=True)
    assert np.isfinite(log["dense"]).all() and np.isfinite(log["distill"]).all()


def test_mirror_image_labels_describe_the_mirrored_face(face: FaceModel) -> None:
    """A known answer for labelled mirror images: the dense landmarks of an ICT face with one-sided
    expressions and a turned head, mirrored (x -> W - x, partners swapped by Correspondence.mirror), are those
    of the face with the mirrored labels (left and right shapes swapped, yaw and roll negated), and the
    distillation term is zero for that mirrored prediction on a flipped item (and not on an unflipped one)."""
    from facetrack.model.correspondence import Correspondence
    from facetrack.model.multilevel import MultiLevelModel
    from facetrack.render.camera import Camera
    from facetrack.render.formation import view
    from train.losses import LossWeights, TrainingLoss, mirrored_shapes

    model, cam = MultiLevelModel(face, n_cg=1, n_cr=1), Camera()
    corr, names = Correspondence.load(), list(face.exp_names)
    assert corr.mirror is not None and (corr.mirror[corr.mirror] == np.arange(len(corr.mirror))).all()
    sl = model.layout.slices()
    x = torch.zeros(1, model.layout.size)
    x[0, sl["trans"]] = torch.tensor([0.0, 0.0, -112.0])
    x[0, sl["rot"]] = torch.tensor([0.1, 0.4, 0.15])
    for name, w in (("eyeBlink_L", 0.8), ("mouthSmile_R", 0.6), ("jawLeft", 0.5), ("jawOpen", 0.3)):
        x[0, sl["alpha_exp"].start + names.index(name)] = w
    mirrored = x.clone()
    mirrored[0, sl["rot"]] = torch.tensor([0.1, -0.4, -0.15])
    mirrored[0, sl["alpha_exp"]] = x[0, sl["alpha_exp"]][mirrored_shapes(names)]

    def dense(v: torch.Tensor) -> np.ndarray:
        p = model.params(v)
        uv = view(model(p).v_base, model(p).r_base, p, model.triangles, cam).uv[0].detach().numpy()
        return corr.points(uv)

    seen = dense(x)[corr.mirror] * [-1.0, 1.0] + [cam.width, 0.0]
    err = np.linalg.norm(seen - dense(mirrored), axis=1)
    # px; the refined surface points of two partners are mirror images to 0.2 mm (median), 3 mm at worst
    assert np.median(err) < 0.3 and np.percentile(err, 95) < 1.0 and err.max() < 3.0
    unswapped = x.clone()
    unswapped[0, sl["rot"]] = torch.tensor([0.1, -0.4, -0.15])
    off = np.linalg.norm(seen - dense(unswapped), axis=1)
    assert np.percentile(off, 95) > 3.0  # without the swap the blink and smile stay on their side

    loss = TrainingLoss(face, model, cam, LossWeights(distill=1.0))
    batch = {"pseudo": x, "labelled": torch.ones(1), "flipped": torch.ones(1), "roll_add": torch.zeros(1)}
    assert loss.distill_term(model.params(mirrored), batch).item() == pytest.approx(0.0, abs=1e-10)
    assert loss.distill_term(model.params(mirrored), {**batch, "flipped": torch.zeros(1)}).item() > 0.5


def test_cache_continued_after_the_correctives_grew(tmp_path: Path) -> None:
    """Labels written before and after the correctives grew (466 and 566 entries) go to separate shards and
    load as one array, zero-padded inside the reflectance correctives: every other block reads back as
    written."""
    import cv2

    from facetrack.model.layout import ParamLayout
    from train.prepare import Cache

    old, new = ParamLayout(n_cg=100, n_cr=100), ParamLayout(n_cg=100, n_cr=200)
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=old.size).astype(np.float32), rng.normal(size=new.size).astype(np.float32)]
    cache = Cache(tmp_path / "cache")
    cache.index["labels"] = "test"
    ok, jpeg = cv2.imencode(".jpg", np.zeros((240, 240, 3), np.uint8))
    for k, x in enumerate(vectors):
        cache.add({"jpeg": jpeg.tobytes(), "landmarks": np.zeros((68, 2), np.float32),
                   "confidence": np.ones(68, np.float32), "dense": np.zeros((468, 2), np.float32), "pseudo": x,
                   "name": f"item{k}", "val": False})
    cache.flush()
    assert len(cache.index["shards"]) == 2
    data = CropDataset(tmp_path / "cache", "train")
    assert data.pseudo.shape == (2, new.size)
    for x, layout, row in zip(vectors, (old, new), data.pseudo, strict=True):
        want = layout.split(torch.from_numpy(x)[None])
        got = new.without_correctives(torch.from_numpy(row)[None])
        for name in ("alpha_id", "alpha_exp", "beta", "rot", "trans", "gamma"):
            assert torch.equal(got[name], want[name]), name
    with pytest.raises(ValueError):
        ParamLayout.widen(vectors[1][None], old.size)
