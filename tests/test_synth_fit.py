"""Synthetic ground truth and the fitting round trip (render, perturb, recover)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facetrack.cli import main
from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import Camera
from facetrack.render.losses import LandmarkTable
from facetrack.render.raster_gl import GLRasterizer
from facetrack.render.synthetic import SynthConfig, generate
from train.fit import FitConfig, fit

NARROW_FACE = slice(0, 6706)  # ICT narrow face area: the face without ears and neck


@pytest.fixture(scope="module")
def synth(face: FaceModel, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    # The bare model (no eyeballs or mouth interior): the round trip recovers the model's own render
    return generate(face, out, 3, shared_dir / "faces" / "utkface",
                    SynthConfig(seed=3, yaw=10, pitch=8, roll=8, openings=False))


def test_synthetic_files_match_parameters(synth: Path, face: FaceModel) -> None:
    z = np.load(synth / "synth.npz")
    assert z["params"].shape[0] == 3 and len(list((synth / "images").glob("*.png"))) == 3
    model = MultiLevelModel(face, n_cg=1, n_cr=1)
    v, _ = model.base(model.params(torch.from_numpy(z["params"])))
    assert np.allclose(v.detach().numpy(), z["vertices"], atol=1e-4)  # vertices are exactly the parameters'
    assert (z["landmarks"] > 0).all() and (z["landmarks"] < 240).all()
    img = cv2.imread(str(synth / "images" / "000000.png"))
    assert img.shape == (240, 240, 3) and img.std() > 10  # a real picture, not a blank frame
    # The face is drawn where its landmarks say: the face pixels differ from the photo around it.
    lm = z["landmarks"][0]
    assert 0.01 < np.ptp(lm[:, 0]) / 240 * np.ptp(lm[:, 1]) / 240 < 0.6


def test_fitting_round_trip(synth: Path, face: FaceModel) -> None:
    """Perturb the true parameters, recover them by landmark + photometric descent.

    Reached (3 samples, 400 steps, z-buffer visibility): 0.55-0.80 mm mean error on the narrow face
    area from 1.3-2.0 mm at the start.
    """
    z = np.load(synth / "synth.npz")
    model = MultiLevelModel(face, n_cg=1, n_cr=1)
    lay = model.layout
    raster = GLRasterizer(240, 240, supersample=1)
    for i in range(2):
        rgb = cv2.imread(str(synth / "images" / f"{i:06d}.png"))[:, :, ::-1] / 255.0
        image = torch.tensor(rgb.copy(), dtype=torch.float32).permute(2, 0, 1)[None]
        x = torch.from_numpy(z["params"][i : i + 1])
        p = lay.split(x.clone())
        g = torch.Generator().manual_seed(i)
        p["alpha_id"] += 0.3 * torch.randn(1, lay.n_id, generator=g)
        p["alpha_exp"].add_(0.1 * torch.randn(1, lay.n_exp, generator=g)).clamp_(0, 1)
        p["rot"] += np.radians(2.0) * torch.randn(1, 3, generator=g)
        p["trans"] += torch.tensor([0.5, 0.5, 2.0]) * torch.randn(1, 3, generator=g)
        p["gamma"] += 0.1 * torch.randn(1, 3, 9, generator=g)
        x0 = lay.join(p)
        res = fit(model, LandmarkTable(face), Camera(), image, torch.from_numpy(z["landmarks"][i : i + 1]),
                  torch.ones(1, 68), x0, FitConfig(steps=400),
                  albedo=torch.from_numpy(z["albedo"][i : i + 1].astype(np.float32)), raster=raster)
        gt = torch.from_numpy(z["vertices"][i])
        before = (model.base(lay.split(x0))[0][0] - gt)[NARROW_FACE].norm(dim=-1).mean().item() * 10
        after = (model.base(lay.split(res.x))[0][0] - gt)[NARROW_FACE].norm(dim=-1).mean().item() * 10
        print(f"sample {i}: {before:.2f} mm -> {after:.2f} mm, landmarks {res.history[-1]['landmark_px']:.2f} px")
        assert after < 1.0 and after < 0.7 * before
        assert res.history[-1]["landmark_px"] < 0.5
        assert res.history[-1]["loss"] < 0.2 * res.history[0]["loss"]
    raster.release()


def test_render_cli_writes_pngs(model_file: Path, tmp_path: Path) -> None:
    assert main(["model", "render", "--model", str(model_file), "--out", str(tmp_path)]) == 0
    for name in ("mean", "identity", "jawOpen", "eyeBlink_L", "mouthSmile_L", "light_from_left", "gallery"):
        img = cv2.imread(str(tmp_path / f"{name}.png"))
        assert img is not None and img.std() > 5
    mean, jaw = (cv2.imread(str(tmp_path / f"{n}.png")).astype(float) for n in ("mean", "jawOpen"))
    assert np.abs(mean - jaw).mean() > 1  # the expression changes the picture


def test_synthetic_faces_have_eyes_that_the_lids_close_over(face: FaceModel) -> None:
    """Eyeballs and a mouth interior fill the mesh's holes (the background showed through them, and MediaPipe
    read those faces as blinking): open eyes show the eyeball inside the lid rim; at a full blink the lids
    cover it and the picture is the bare face's; outside the holes nothing changes."""
    from facetrack.render.openings import Openings
    from facetrack.render.synthetic import SyntheticFaces

    holes = Openings.of(face)
    for rim, lm in zip(holes.eyes, (slice(36, 42), slice(42, 48)), strict=True):
        assert 30 <= len(rim) <= 60  # a closed rim loop around each eye
        assert np.linalg.norm(face.mean[rim].mean(0) - face.mean[face.landmarks[lm]].mean(0)) < 0.5
    assert np.linalg.norm(face.mean[holes.mouth].mean(0) - face.mean[face.landmarks[60:68]].mean(0)) < 0.8
    gen = SyntheticFaces(face, None, SynthConfig(seed=4, yaw=5, pitch=5, roll=3))
    bare = SyntheticFaces(face, None, SynthConfig(seed=4, yaw=5, pitch=5, roll=3, openings=False))
    S, blink = 480, [face.exp_names.tolist().index(n) for n in ("eyeBlink_L", "eyeBlink_R")]
    cam, raster = Camera(S, S, focal=2 * Camera().focal), GLRasterizer(S, S, 2)
    black = np.zeros((S, S, 3), np.float32)
    for _ in range(3):
        p, albedo, eyes = gen.params(), torch.from_numpy(gen.albedo())[None], gen.eyes()
        p["alpha_exp"][:] = 0
        with_eyes, vw = gen.render(p, albedo, eyes, raster, cam, black)
        without, _ = bare.render(p, albedo, eyes, raster, cam, black)
        boxes = []  # the openings' bounding boxes, with a margin for the rims' antialiased edges
        for rim in (*holes.eyes, holes.mouth):
            (x0, y0), (x1, y1) = vw.uv[0, rim].numpy().min(0).astype(int), vw.uv[0, rim].numpy().max(0).astype(int)
            boxes.append(np.zeros((S, S), bool))
            boxes[-1][y0 - 3 : y1 + 4, x0 - 3 : x1 + 4] = True
        inside = boxes[0] | boxes[1]
        hole = inside & (without.sum(-1) == 0)
        assert hole.sum() > 200 and (with_eyes[hole].sum(-1) > 0.05).mean() > 0.95  # the eyeball fills the hole
        assert np.abs(with_eyes - without).sum(-1)[~(inside | boxes[2])].max() < 0.05  # the face is unchanged
        p["alpha_exp"][0, blink] = 1.0
        shut, _ = gen.render(p, albedo, eyes, raster, cam, black)
        shut_bare, _ = bare.render(p, albedo, eyes, raster, cam, black)
        # closed lids hide the eyeball (but for the slit ICT's lids leave at a full blink)
        assert (np.abs(shut - shut_bare).sum(-1)[inside] > 0.1).sum() < 0.1 * hole.sum()
    raster.release()


def test_synthetic_eyes_turn_with_the_eye_look_shapes(face: FaceModel) -> None:
    """eyeLook weights turn the eyeballs the way ARKit names them (the subject's left eye is at +x): what the
    labels say is what the picture shows."""
    from facetrack.render.openings import Eyes, Openings, eye_look

    holes, names = Openings.of(face), face.exp_names.tolist()
    eyes = Eyes(np.array([0.2, 0.1, 0.05]), np.zeros(2))

    def fronts(**shapes: float) -> np.ndarray:  # each eyeball's front pole minus its centre (model frame)
        w = np.zeros(len(names))
        for k, v in shapes.items():
            w[names.index(k)] = v
        verts, _, _ = holes.geometry(face.mean, face.mean, eyes, eye_look(names, w), 0)
        n_sphere = (len(verts) - 1) // 2
        balls = verts[:n_sphere], verts[n_sphere : 2 * n_sphere]
        return np.stack([b[0] - b.mean(0) for b in balls])

    rest = fronts()
    assert np.allclose(rest[:, :2], 0, atol=1e-6)  # straight ahead
    d = fronts(eyeLookOut_L=1.0, eyeLookIn_R=1.0) - rest  # both eyes to the subject's left (+x)
    assert d[0, 0] > 0.3 and d[1, 0] > 0.3
    d = fronts(eyeLookUp_L=1.0) - rest  # the left eye (second opening, +x) up, the right one still
    assert d[1, 1] > 0.3 and np.allclose(d[0], 0)
    assert face.mean[holes.eyes[1]][:, 0].mean() > 0 > face.mean[holes.eyes[0]][:, 0].mean()
