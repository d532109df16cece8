"""Build the base reflectance model from training photos (ICT has no albedo), after Booth et al. 2017.

    python -m train.reflectance --cache CACHE --out reflectance.npz [--images 256] [--modes 80]

Per photo: fit geometry, pose, a global skin colour and white SH light (ambient level fixed, so colour
and brightness go to reflectance) to landmarks and pixels; sample each vertex's colour where it is seen
(z-buffer, not grazing, away from mesh holes) and divide out the shading. The samples, with gaps where a
vertex was not seen, go into a PCA that fills the gaps iteratively: a mean and m_r modes with their
sigma. The model is then fixed, as the paper's scan-based one; the correctives learn what it misses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from facetrack.errors import FacetrackError
from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel
from facetrack.net.weights import save_reflectance
from facetrack.render.camera import Camera
from facetrack.render.formation import View, base_params, view
from facetrack.render.losses import LandmarkTable
from facetrack.render.occlusion import zbuffer_visible
from facetrack.render.points import sample
from facetrack.render.raster_gl import GLRasterizer
from train.data import CropDataset
from train.fit import DEFAULT_LR, FitConfig, fit, skin_colour_model

MIN_COS = 0.3  # samples seen more obliquely than about 72 degrees are too dark and blurred to trust
MIN_SHADING = 0.25


def observed_albedo(image: torch.Tensor, vw: View, seen: torch.Tensor, mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, V, 3) the image's colour over the view's shading, and (B, V) where that can be trusted: seen (the
    z-buffer `seen` and the view's own visibility), inside `mask`, not grazing, not dark, inside [0, 1]."""
    cos = (vw.n_cam * -torch.nn.functional.normalize(vw.v_cam, dim=-1)).sum(-1)
    ok = seen & vw.visible & (cos > MIN_COS) & mask & (vw.shading.min(-1).values > MIN_SHADING)
    albedo = sample(image, vw.uv) / vw.shading.clamp(min=MIN_SHADING)
    return albedo, ok & (albedo < 1.0).all(-1) & (albedo > 0.0).all(-1)


def albedo_samples(face: FaceModel, data: CropDataset, n: int, steps: int, batch: int = 16,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(N, V, 3) albedo samples and (N, V) validity from fitting n photos."""
    model = MultiLevelModel(skin_colour_model(face), n_cg=1, n_cr=1)
    table, cam = LandmarkTable(face), Camera()
    raster = GLRasterizer.for_camera(cam, 1)
    cfg = FitConfig(steps=steps, mono_light=True, lr={**DEFAULT_LR})
    out_a, out_v = [], []
    order = np.random.default_rng(0).permutation(len(data))[:n]
    for start in tqdm(range(0, len(order), batch), desc="reflectance fits", disable=not progress):
        items = [data[int(i)] for i in order[start : start + batch]]
        img = torch.stack([it["image"] for it in items])
        lm = torch.stack([it["landmarks"] for it in items])
        conf = torch.stack([it["confidence"] for it in items])
        p0 = {k: v.expand(len(items), *v.shape[1:]).clone() for k, v in base_params(model).items()}
        res = fit(model, table, cam, img, lm, conf, model.layout.join(p0), cfg, raster=raster)
        with torch.no_grad():
            p = model.layout.split(res.x)
            v_b, r_b = model.base(p)
            vw = view(v_b, r_b, p, model.triangles, cam)
            seen = zbuffer_visible(raster, cam, vw.v_cam, model.triangles)
            albedo, ok = observed_albedo(img, vw, seen, model.photo_mask > 0)
        out_a.append(albedo.numpy())
        out_v.append(ok.numpy())
    raster.release()
    return np.concatenate(out_a), np.concatenate(out_v)


def pca_with_gaps(x: np.ndarray, valid: np.ndarray, modes: int, iters: int = 8) -> tuple[np.ndarray, ...]:
    """PCA of (N, V, 3) samples with (N, V) gaps: fill gaps from the low-rank reconstruction, repeat.

    Vertices never seen take the mean colour of the seen skin. Returns mean (V, 3), basis (K, V, 3) scaled
    by each mode's standard deviation (so weights ~ N(0, 1), like the identity modes) and sigma = 1.
    """
    N, V, _ = x.shape
    seen = valid.any(axis=0)
    fill = np.nanmean(np.where(valid[..., None], x, np.nan).reshape(-1, 3), axis=0)
    col_mean = np.where(seen[:, None], np.nansum(np.where(valid[..., None], x, 0), 0) /
                        np.maximum(valid.sum(0), 1)[:, None], fill)
    X = np.where(valid[..., None], x, col_mean[None]).reshape(N, V * 3)
    W = np.repeat(valid, 3, axis=1)
    K = max(1, min(modes, N - 1))
    for _ in range(iters):
        mean = X.mean(0)
        U, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
        recon = mean + (U[:, :K] * S[:K]) @ Vt[:K]
        X = np.where(W, x.reshape(N, V * 3), recon)
    mean = X.mean(0)
    _, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
    std = S[:K] / np.sqrt(max(N - 1, 1))
    return mean.reshape(V, 3), (Vt[:K] * std[:, None]).reshape(K, V, 3), np.ones(K, np.float32)


def build(face: FaceModel, cache: Path, out: Path, images: int = 256, modes: int = 80, steps: int = 150,
          progress: bool = True) -> dict:
    data = CropDataset(cache, "train")
    if len(data) < 2:
        raise FacetrackError(f"need at least 2 training photos in {cache} to build a reflectance model")
    x, valid = albedo_samples(face, data, images, steps, progress=progress)
    mean, basis, sigma = pca_with_gaps(x, valid, modes)
    mean = np.clip(mean, 0.0, 1.0)
    rms = np.sqrt((basis**2).sum(-1).mean(-1))
    info = {"images": int(len(x)), "modes": int(len(sigma)), "seen_per_vertex": round(float(valid.mean()), 3),
            "mean_rgb": [round(float(c), 3) for c in mean.mean(0)],
            "mode_rms_first": [round(float(s), 4) for s in rms[:5]]}
    save_reflectance(out, mean, basis, sigma, meta=str(info))
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.reflectance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--modes", type=int, default=80)
    ap.add_argument("--steps", type=int, default=150, help="fitting steps per batch of photos")
    ap.add_argument("--model", type=Path)
    args = ap.parse_args(argv)
    try:
        info = build(FaceModel.load(args.model), args.cache, args.out, args.images, args.modes, args.steps)
    except FacetrackError as e:
        print(f"reflectance: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {info}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
