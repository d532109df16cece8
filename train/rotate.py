"""Turn real training faces in 3D: copies of labelled photos and frames seen with the head tilted up or down.

    python -m train.rotate CACHE [--count N] [--max-turn 35] [--max-yaw-turn 10] [--seed 0]

Real photos rarely look far up or down (UTKFace and the shared clips: 98% of fitted pitches within -12..+23
degrees), and the synthetic faces that do are not real skin, hair and light; so the encoder learned to
under-read a real face looking up. This is 3DDFA's face profiling done with our own fit: each labelled real
crop's fitted mesh is turned about the head's centre to a drawn pitch (over +-42 degrees, at most
--max-turn from where it was; the yaw only a little, since a large yaw turn shows a cheek that was never
seen), reframed as the app would crop it, and the image follows:
- inside the face every pixel takes the colour of the same surface point in the original crop (the mesh is
  rasterized with its old pixel positions as attributes);
- outside, the face's motion fades into its best affine motion, so hair, ears and neck come along;
- what the original never showed (surface hidden behind the face, background the head covered) is
  painted in from its surroundings (OpenCV's Telea inpainting).
The labels are the fit's with the new rotation and translation; the 468 dense landmarks move with their
surface points (MediaPipe's offsets from them kept). Items join the same cache as `rotated/<name>`, in the
split of the item they came from; re-running continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from facetrack.errors import FacetrackError
from facetrack.model.correspondence import MP68, Correspondence
from facetrack.model.facemodel import FaceModel
from facetrack.model.layout import POSE
from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import CROP_SIZE, Camera, euler_to_matrix, matrix_to_euler
from facetrack.render.raster_gl import GLRasterizer
from facetrack.vision.crop import box_from_landmarks
from train.prepare import Cache, crop_jpeg, crop_rgb

PREFIX = "rotated/"
PITCH_RANGE, YAW_RANGE = 42.0, 65.0  # degrees: where the drawn poses lie
HEAD_CENTRE_DEPTH = 9.0  # cm behind the landmarks' centroid: the point a head turns about


class Turner:
    """Re-poses one labelled crop; `face` gives geometry, `corr` the dense landmarks' surface points."""

    def __init__(self, face: FaceModel, corr: Correspondence, camera: Camera | None = None) -> None:
        self.corr = corr
        self.camera = camera or Camera()
        self.model = MultiLevelModel(face, n_cg=1, n_cr=1)  # the base level's geometry is all it is used for
        self.raster = GLRasterizer.for_camera(self.camera, supersample=1)
        self.triangles = face.triangles.astype(np.int32)
        s = np.arange(CROP_SIZE) + 0.5
        self.grid = np.stack(np.meshgrid(s, s), -1).astype(np.float32)  # (H, W, 2) pixel centres (u, v)

    def vertices(self, label: np.ndarray) -> np.ndarray:
        p = self.model.layout.without_correctives(torch.from_numpy(label[None].astype(np.float32)))
        return self.model.geometry(p)[0].double().numpy()

    def _project(self, v: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
        return self.camera.project(torch.from_numpy(v @ R.T + t)).numpy()

    def __call__(self, img: np.ndarray, label: np.ndarray, dense: np.ndarray, angles_deg: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """uint8 (240, 240, 3) crop, its label vector, its (468, 2) dense landmarks, and the new (pitch, yaw)
        in degrees -> (image, label, dense, 68 landmarks) seen from that pose, or None where the turned face
        would leave the crop."""
        v = self.vertices(label)
        rot = label[POSE][:3].astype(np.float64)
        R = euler_to_matrix(torch.from_numpy(rot)).numpy()
        t = label[POSE][3:].astype(np.float64)
        new = np.array([np.radians(angles_deg[0]), np.radians(angles_deg[1]), rot[2]])
        R2 = euler_to_matrix(torch.from_numpy(new)).numpy()
        pts = self.corr.points(v)
        centre = pts.mean(0) - np.array([0.0, 0.0, HEAD_CENTRE_DEPTH])
        c_cam = R @ centre + t
        t2 = c_cam - R2 @ centre  # the head's centre stays where it was
        keep = dense - self._project(pts, R, t)  # MediaPipe's own offsets from the surface points stay
        for _ in range(4):  # reframe: the turned face's 68 landmarks give the crop box the app would cut
            box = box_from_landmarks((self._project(pts, R2, t2) + keep)[MP68])
            k = CROP_SIZE / box.side
            c_cam = R2 @ centre + t2
            c_cam = c_cam / k  # a smaller box means a face further away: along the ray, scaled depth
            depth = -c_cam[2]
            c_cam[0] -= (box.cx - CROP_SIZE / 2) * depth / self.camera.focal * k
            c_cam[1] += (box.cy - CROP_SIZE / 2) * depth / self.camera.focal * k
            t2 = c_cam - R2 @ centre
        dense2 = self._project(pts, R2, t2) + keep
        lm68 = dense2[MP68]
        if not np.isfinite(dense2).all() or lm68.min() < 0 or lm68.max() > CROP_SIZE:
            return None
        cam_old, cam_new = v @ R.T + t, v @ R2.T + t2
        src = self._project(v, R, t).astype(np.float32)
        old_depth, old_cover = self.raster.render(self.camera.clip(torch.from_numpy(cam_old)).numpy(), self.triangles,
                                                  -cam_old[:, 2:].astype(np.float32))
        attrs, cover = self.raster.render(self.camera.clip(torch.from_numpy(cam_new)).numpy(), self.triangles,
                                          np.c_[src, -cam_old[:, 2]].astype(np.float32))
        mapx, mapy, unseen = self._source_map(attrs, cover, old_depth[..., 0], old_cover)
        image = cv2.remap(img, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if unseen.any():
            image = cv2.inpaint(image, unseen.astype(np.uint8), 4, cv2.INPAINT_TELEA)
        out = label.copy()
        out[POSE] = np.concatenate([matrix_to_euler(torch.from_numpy(R2)).numpy(), t2]).astype(label.dtype)
        return image, out, dense2.astype(np.float32), lm68.astype(np.float32)

    def _source_map(self, attrs: np.ndarray, cover: np.ndarray, old_depth: np.ndarray, old_cover: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every output pixel, where to read the old crop, and which pixels the old crop never saw.
        Inside the face: the rasterized old positions (cracks between mesh parts filled from their
        neighbours); outside: the face's affine motion plus what it leaves, faded with distance (normalized
        convolution). Unseen: surface that was hidden behind the face in the old crop, and background that
        the head covered there (it would show the old head twice)."""
        covered = cover > 0.99
        old = np.where(covered[..., None], attrs / np.maximum(cover, 1e-3)[..., None], 0.0)
        disp = old[..., :2] - self.grid
        m = covered.astype(np.float32)
        near = cv2.GaussianBlur(m, (0, 0), 1.5)
        filled = cv2.GaussianBlur(disp * m[..., None], (0, 0), 1.5) / np.maximum(near, 1e-6)[..., None]
        inside = near > 0.3
        disp = np.where(covered[..., None], disp, filled)
        g = self.grid[covered]
        A, *_ = np.linalg.lstsq(np.c_[g, np.ones(len(g))], g + disp[covered], rcond=None)
        affine = (np.c_[self.grid.reshape(-1, 2), np.ones(CROP_SIZE ** 2)] @ A).reshape(CROP_SIZE, CROP_SIZE, 2)
        affine = (affine - self.grid).astype(np.float32)
        m = inside.astype(np.float32)
        resid = cv2.GaussianBlur((disp - affine) * m[..., None], (0, 0), 12)
        weight = cv2.GaussianBlur(m, (0, 0), 12)
        disp = np.where(inside[..., None], disp, affine + resid / (weight + 0.05)[..., None]).astype(np.float32)
        where = self.grid + disp - 0.5  # remap takes pixel indices
        mapx, mapy = where[..., 0], where[..., 1]
        seen_depth = cv2.remap(old_depth / np.maximum(old_cover, 1e-3), mapx, mapy, cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        head_before = cv2.remap(old_cover, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) > 0.5
        hidden = covered & (old[..., 2] > seen_depth + 1.0)  # cm behind what the old crop showed there
        unseen = hidden | (~inside & head_before)
        return mapx, mapy, unseen

def draw_pose(current_deg: np.ndarray, max_turn: float, max_yaw_turn: float, rng: np.random.Generator) -> np.ndarray:
    """A (pitch, yaw) in degrees: the pitch drawn over the whole range but at most `max_turn` from the current
    one, the yaw turned a little (the far cheek that a large yaw turn shows was never seen: it would be
    painted in, so yaw range comes from the synthetic faces and the mirror images)."""
    pitch = current_deg[0] + np.clip(rng.uniform(-PITCH_RANGE, PITCH_RANGE) - current_deg[0], -max_turn, max_turn)
    yaw = np.clip(current_deg[1] + rng.uniform(-max_yaw_turn, max_yaw_turn), -YAW_RANGE, YAW_RANGE)
    return np.array([pitch, yaw])


def labelled_items(cache: Path):
    """(name, val, JPEG bytes, label, dense) for every real labelled item of the cache (not synthetic
    faces, whose poses already span the range, and not items this command made)."""
    path = cache / "index.json"
    if not path.is_file():
        raise FacetrackError(f"no training cache at {cache} (build one with train.prepare --landmarker)")
    index = json.loads(path.read_text())
    if "labels" not in index:
        raise FacetrackError(f"the cache {cache} has no labels: build it with train.prepare --landmarker")
    for shard in index["shards"]:
        with np.load(cache / shard) as z:
            if "pseudo" not in z.files:
                continue
            jpeg, off, names, val = z["jpeg"], z["offsets"], z["names"], z["val"]
            pseudo, dense = z["pseudo"], z["dense"]  # each key read once: NpzFile reads again on every access
        for i, name in enumerate(map(str, names)):
            if name.startswith(PREFIX) or "synth" in name.split("/")[0]:
                continue
            yield name, bool(val[i]), jpeg[off[i]:off[i + 1]].copy(), pseudo[i].copy(), dense[i].copy()


def rotate_cache(cache_dir: Path, count: int = 4000, max_turn: float = 35.0, max_yaw_turn: float = 10.0, seed: int = 0,
                 model_file: Path | None = None, progress: bool = True) -> dict:
    """Add up to `count` turned copies of the cache's real items (each item at most once); returns the index."""
    names = list(labelled_items(cache_dir))
    face = FaceModel.load(model_file)
    turner = Turner(face, Correspondence.load())
    cache = Cache(cache_dir)
    order = np.random.default_rng(seed).permutation(len(names))
    made = sum(n.startswith(PREFIX) for n in cache.done)
    bar = tqdm(desc="rotate", unit="img", total=count, initial=min(made, count), disable=not progress)
    try:
        for k in order:
            if made >= count:
                break
            name, val, jpeg, label, dense = names[k]
            new_name = PREFIX + name
            if new_name in cache.done:
                continue
            rng = np.random.default_rng([seed, int(k)])
            pose = draw_pose(np.degrees(label[POSE][:2].astype(np.float64)), max_turn, max_yaw_turn, rng)
            rgb = crop_rgb(jpeg)
            if rgb is None:
                cache.reject(new_name, "unreadable crop")
                continue
            out = turner(rgb, label, dense, pose)
            if out is None:
                cache.reject(new_name, "turned face leaves the crop")
                continue
            image, new_label, new_dense, lm68 = out
            encoded = crop_jpeg(image)
            if encoded is None:
                cache.reject(new_name, "jpeg encoding failed")
                continue
            cache.add({"jpeg": encoded, "landmarks": lm68, "confidence": np.ones(68, np.float32),
                       "dense": new_dense, "pseudo": new_label, "name": new_name, "val": val})
            made += 1
            bar.update()
    finally:
        cache.flush()
        bar.close()
    return cache.index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.rotate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path, help="a labelled cache (train.prepare --landmarker)")
    ap.add_argument("--count", type=int, default=4000, help="turned copies to have in the cache")
    ap.add_argument("--max-turn", type=float, default=35.0, help="degrees the pitch turns at most")
    ap.add_argument("--max-yaw-turn", type=float, default=10.0, help="degrees the yaw turns at most")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, help="face model file (default: the user cache)")
    args = ap.parse_args(argv)
    try:
        idx = rotate_cache(args.cache, args.count, args.max_turn, args.max_yaw_turn, args.seed, args.model)
    except FacetrackError as e:
        print(f"rotate: error: {e}", file=sys.stderr)
        return 2
    print(f"cache {args.cache}: {idx['counts']} items; rejected {idx['rejected']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
