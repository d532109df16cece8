"""Synthetic ground truth: faces with known parameters rendered over real photos.

Each sample draws identity, expression, pose, SH lighting and a plausible per-vertex albedo (skin tone
from light to dark, low-frequency blotches, redder lips, darker brows), renders the base level with the
CPU rasterizer over a random crop of a real photo, and stores the exact parameters, vertices and the 68
projected landmarks (jawline points on the silhouette, as a detector would mark them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.io.sources import IMAGE_EXTS
from facetrack.model.correspondence import Correspondence
from facetrack.model.facemodel import FaceModel
from facetrack.model.ict import feature_masks
from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import CROP_SIZE, DEFAULT_TRANSLATION, Camera
from facetrack.render.formation import View, view
from facetrack.render.images import draw, save_png
from facetrack.render.openings import Eyes, Openings, eye_look
from facetrack.render.raster_gl import GLRasterizer

RENDER_VERSION = 2  # 2: eyeballs and a mouth interior fill the mesh's holes (1: the background showed through)
SKIN_TONES = np.array([[0.86, 0.69, 0.59], [0.74, 0.54, 0.42], [0.58, 0.40, 0.29], [0.36, 0.24, 0.17]])


@dataclass
class SynthConfig:
    """Sampling ranges; angles in degrees, translations in cm."""

    seed: int = 0
    id_std: float = 1.0
    max_active_expressions: int = 4
    max_expression: float = 0.9
    yaw: float = 45.0
    pitch: float = 20.0
    roll: float = 15.0
    shift_xy: float = 2.5
    shift_z: float = 12.0
    ambient: tuple[float, float] = (0.6, 1.1)
    directional: float = 0.5
    openings: bool = True  # eyeballs and mouth interior; False: the bare model (round trips of the model itself)


def _smooth(values: np.ndarray, ring_ptr: np.ndarray, ring_idx: np.ndarray, times: int) -> np.ndarray:
    for _ in range(times):
        values = 0.5 * values + 0.5 * np.add.reduceat(values[ring_idx], ring_ptr[:-1]) / np.diff(ring_ptr)[:, None]
    return values


class SyntheticFaces:
    """Draws samples; `albedo_regions` are soft feature masks reused for every sample."""

    def __init__(self, face: FaceModel, backgrounds: Path | None = None, cfg: SynthConfig | None = None) -> None:
        self.face, self.cfg = face, cfg or SynthConfig()
        self.model = MultiLevelModel(face, n_cg=1, n_cr=1)
        self.rng = np.random.default_rng(self.cfg.seed)
        # The eyes draw from their own stream: a seed gives the same faces, poses and backgrounds as before
        # synthetic faces had eyes.
        self.eye_rng = np.random.default_rng([self.cfg.seed, 1])
        masks = feature_masks(face.mean, face.triangles, face.landmarks)
        stack = np.stack([masks[k].astype(np.float64) for k in ("lips", "brows", "eyes", "nostrils")], axis=1)
        self.regions = _smooth(stack, face.ring_ptr, face.ring_idx, 3)
        self.backgrounds = self._list_backgrounds(backgrounds)
        self.openings = Openings.of(face)
        lash = np.zeros((face.n_vertices, 1))
        lash[np.concatenate(self.openings.eyes)] = 1.0
        self.lash_line = _smooth(lash, face.ring_ptr, face.ring_idx, 1)[:, 0] if self.cfg.openings \
            else np.zeros(face.n_vertices)  # dark lid margins: lashes, and the line a closed eye shows

    @staticmethod
    def _list_backgrounds(folder: Path | None) -> list[Path]:
        if folder is None:
            return []
        if not folder.is_dir():
            raise FacetrackError(f"background folder not found: {folder}")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise FacetrackError(f"no images in background folder: {folder}")
        return files

    def albedo(self) -> np.ndarray:
        """(V, 3) plausible skin reflectance in [0, 1]."""
        rng, V = self.rng, self.face.n_vertices
        t = rng.uniform(0, len(SKIN_TONES) - 1)
        k = min(int(t), len(SKIN_TONES) - 2)
        tone = SKIN_TONES[k] * (1 - (t - k)) + SKIN_TONES[k + 1] * (t - k)
        tone = tone * rng.uniform(0.95, 1.05, 3)
        a = np.tile(tone, (V, 1))
        centres = self.face.mean[rng.integers(0, V, 6)]
        d2 = ((self.face.mean[:, None] - centres[None]) ** 2).sum(-1)
        blotch = (np.exp(-d2 / (2 * 3.0**2)) * rng.uniform(-0.08, 0.08, 6)).sum(-1)
        a *= (1 + blotch)[:, None]
        lips, brows, eyes, nostrils = self.regions.T
        a = a * (1 - lips[:, None]) + lips[:, None] * a * np.array([1.0, 0.68, 0.70]) * rng.uniform(0.75, 0.95)
        hair = rng.uniform(0.25, 0.6) * tone.mean() * np.array([1.0, 0.85, 0.7])
        a = a * (1 - 0.8 * brows[:, None]) + 0.8 * brows[:, None] * hair
        a *= (1 - 0.15 * eyes - 0.45 * nostrils - 0.6 * self.lash_line)[:, None]
        a += rng.normal(0, 0.01, a.shape)
        return np.clip(a, 0.02, 0.98).astype(np.float32)

    def params(self) -> dict[str, torch.Tensor]:
        """One sample's parameter blocks (batch 1)."""
        c, rng, lay = self.cfg, self.rng, self.model.layout
        p = {k: v.clone() for k, v in lay.split(torch.zeros(1, lay.size)).items()}
        p["alpha_id"][0] = torch.tensor(rng.normal(0, c.id_std, lay.n_id))
        active = rng.choice(lay.n_exp, rng.integers(0, c.max_active_expressions + 1), replace=False)
        p["alpha_exp"][0, active] = torch.tensor(rng.uniform(0.1, c.max_expression, len(active)), dtype=torch.float32)
        angles = np.radians([rng.uniform(-c.pitch, c.pitch), rng.uniform(-c.yaw, c.yaw), rng.uniform(-c.roll, c.roll)])
        p["rot"][0] = torch.tensor(angles)
        shift = [rng.uniform(-c.shift_xy, c.shift_xy), rng.uniform(-c.shift_xy, c.shift_xy),
                 rng.uniform(-c.shift_z, c.shift_z)]
        p["trans"][0] = torch.tensor(DEFAULT_TRANSLATION) + torch.tensor(shift)
        g = np.zeros((3, 9))
        g[:, 0] = rng.uniform(*c.ambient)
        direction = rng.normal(size=3)
        direction[2] = abs(direction[2]) + 0.5  # mostly from the camera side
        direction /= np.linalg.norm(direction)
        g[:, 1:4] = c.directional * rng.uniform(0.2, 1.0) * direction[[1, 2, 0]]
        g[:, 4:] = rng.normal(0, 0.05, 5)
        g *= rng.uniform(0.9, 1.1, (3, 1))
        p["gamma"][0] = torch.tensor(g)
        return p

    def eyes(self) -> Eyes:
        """One sample's eyes (draw once per person: a clip keeps them)."""
        return Eyes.draw(self.eye_rng)

    def render(self, p: dict[str, torch.Tensor], albedo: torch.Tensor, eyes: Eyes, raster: GLRasterizer,
               camera: Camera, background: np.ndarray) -> tuple[np.ndarray, View]:
        """One sample's base level with eyeballs and mouth interior (facetrack.render.openings) over the
        background: the image (H, W, 3) in [0, 1] and the face's own view (its vertices only)."""
        V = self.face.n_vertices
        v, _ = self.model.base(p)
        face = view(v, albedo, p, self.model.triangles, camera)  # the face shaded by its own normals, as fitted
        if not self.cfg.openings:
            return draw(raster, camera, face, self.face.triangles, background=background)[0], face
        rest, _ = self.model.base({**p, "alpha_exp": torch.zeros_like(p["alpha_exp"])})
        look = eye_look(self.model.exp_names, p["alpha_exp"][0].double().numpy())
        ev, ea, et = self.openings.geometry(rest[0].double().numpy(), v[0].double().numpy(), eyes, look, V)
        v_all = torch.cat([v, torch.from_numpy(ev).to(v)[None]], 1)
        a_all = torch.cat([albedo, torch.from_numpy(ea).to(albedo)[None]], 1)
        tris = np.concatenate([self.face.triangles, et]).astype(self.face.triangles.dtype)
        everything = view(v_all, a_all, p, torch.from_numpy(tris.astype(np.int64)), camera)
        colour = torch.cat([face.color, everything.color[:, V:]], 1)
        rgb, _ = draw(raster, camera, replace(everything, color=colour), tris, background=background)
        return rgb, face

    def background(self, size: int) -> np.ndarray:
        """A random crop of a real photo, or a smooth colour gradient when no folder was given."""
        rng = self.rng
        if not self.backgrounds:
            c0, c1 = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
            ramp = np.linspace(0, 1, size)[:, None, None]
            return np.broadcast_to(c0 * (1 - ramp) + c1 * ramp, (size, size, 3)).astype(np.float32)
        img = None
        while img is None:  # unreadable photos are dropped from the list, not fatal
            if not self.backgrounds:
                raise FacetrackError("no readable image in the background folder")
            k = int(rng.integers(len(self.backgrounds)))
            img = cv2.imread(str(self.backgrounds[k]), cv2.IMREAD_COLOR)
            if img is None:
                self.backgrounds.pop(k)
        h, w = img.shape[:2]
        s = int(rng.uniform(0.4, 1.0) * min(h, w))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = cv2.resize(img[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)
        if rng.uniform() < 0.5:
            crop = crop[:, ::-1]
        return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def silhouette_landmarks(face: FaceModel, v: View) -> np.ndarray:
    """(68,) vertex indices as a detector would mark them: jawline points on the visible silhouette."""
    idx = face.landmarks.astype(np.int64).copy()
    n = v.n_cam[0].numpy()
    d = -v.v_cam[0].numpy()
    grazing = np.abs((n * d).sum(-1)) / np.linalg.norm(d, axis=-1)
    vis = v.visible[0].numpy()
    for i in range(17):
        cand = face.contour_candidates(i)
        cand = cand[vis[cand]] if vis[cand].any() else cand
        idx[i] = cand[np.argmin(grazing[cand])]
    return idx


LAYOUT_SIZES = ("alpha_id", "alpha_exp", "beta", "delta_g", "delta_r")  # synth.npz "layout", in this order


def generate(face: FaceModel, out: Path, n: int, backgrounds: Path | None = None,
             cfg: SynthConfig | None = None, size: int = CROP_SIZE) -> Path:
    """Render n samples into out/images/*.png and out/synth.npz (parameters, vertices, landmarks)."""
    gen = SyntheticFaces(face, backgrounds, cfg)
    camera = Camera(size, size)
    raster = GLRasterizer(size, size, supersample=2)
    lay = gen.model.layout
    corr = Correspondence.load()
    xs, verts, albedos, lms, lm_idx, dense = [], [], [], [], [], []
    (out / "images").mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for i in range(n):
            p = gen.params()
            albedo = torch.from_numpy(gen.albedo())[None]
            v_b, _ = gen.model.base(p)
            rgb, vw = gen.render(p, albedo, gen.eyes(), raster, camera, gen.background(size))
            save_png(out / "images" / f"{i:06d}.png", rgb)
            idx = silhouette_landmarks(face, vw)
            xs.append(lay.join(p)[0].numpy())
            verts.append(v_b[0].numpy())
            albedos.append(albedo[0].numpy())
            lm_idx.append(idx)
            lms.append(vw.uv[0].numpy()[idx])
            dense.append(corr.points(vw.uv[0].numpy()))  # where MediaPipe's 468 points project, exactly
    raster.release()
    np.savez(out / "synth.npz", params=np.stack(xs).astype(np.float32), vertices=np.stack(verts),
             albedo=np.stack(albedos).astype(np.float16), landmarks=np.stack(lms).astype(np.float32),
             landmark_vertices=np.stack(lm_idx).astype(np.int32), focal=np.float32(camera.focal),
             dense=np.stack(dense).astype(np.float32), layout=np.array([lay.sizes[k] for k in LAYOUT_SIZES]))
    meta = {"render_version": RENDER_VERSION, "n": n, "size": size, "focal": camera.focal, "config": asdict(gen.cfg),
            "layout": lay.table(), "backgrounds": str(backgrounds) if backgrounds else None,
            "vertices": "base level, model frame, cm", "landmarks": "pixels in the crop, top-left origin"}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return out
