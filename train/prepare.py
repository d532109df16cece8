"""Build the training cache: face crops with 68 landmarks and confidences, from photos and videos.

    python -m train.prepare CACHE SOURCE [SOURCE ...] [--landmarker face_landmarker.task]

A SOURCE is a folder of images, a video file (frames sampled every --video-step), or a folder written by
`facetrack synth` (its exact landmarks are used, confidence 1). Faces are found with OpenCV's Haar cascade
(dlib HOG as fallback) on the image padded by a quarter of its size (tight crops such as UTKFace cut
chins and foreheads), landmarks come from dlib (or FAN when its weights are present) with a confidence,
and the 240x240 crop is placed from the landmarks (facetrack.vision.crop). Bad detections are rejected
with a reason. Work is written in shards; re-running skips every item already accepted or rejected.

With `--landmarker` every item goes through the app's own tracker instead (MediaPipe's 478 landmarks, the
crop framed from them, the encoder's guess, the per-frame fit with identity solved from that image), and
the cache also stores the 468 dense landmarks in crop pixels and the fitted parameter vector: a dense
landmark term and pseudo-labels to distil the fit into the encoder (train.losses).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from facetrack.errors import FacetrackError
from facetrack.evaluation.split import VAL_FRACTION, image_group, is_val
from facetrack.io.sources import IMAGE_EXTS, open_source
from facetrack.model.layout import ParamLayout
from facetrack.vision.crop import CROP_PER_FACE, CropBox, box_from_landmarks, crop
from facetrack.vision.faces import Face, FaceFinder

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
INDEX = "index.json"


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def crop_jpeg(rgb: np.ndarray) -> bytes | None:
    """A crop as the cache stores it (JPEG, quality 92), or None when encoding fails."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return jpeg.tobytes() if ok else None


def crop_rgb(jpeg: np.ndarray) -> np.ndarray | None:
    """A cached crop's JPEG bytes (uint8 array) as RGB, or None when they are not a readable image."""
    bgr = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class Cache:
    """The on-disk cache: shard_NNNNN.npz files plus index.json (done items, rejections, shards). Items are
    written a shard at a time: `add` flushes when `shard_size` are pending."""

    def __init__(self, root: Path, shard_size: int = 500) -> None:
        self.root, self.shard_size = root, shard_size
        root.mkdir(parents=True, exist_ok=True)
        path = root / INDEX
        self.index = json.loads(path.read_text()) if path.is_file() else {
            "version": 1, "done": [], "rejected": {}, "rejected_items": [], "shards": [], "counts": {}}
        self.done = set(self.index["done"])
        self.pending: list[dict] = []
        self.pending_rejects: list[tuple[str, str]] = []

    def add(self, item: dict) -> None:
        if self.pending and np.shape(item.get("pseudo")) != np.shape(self.pending[-1].get("pseudo")):
            self.flush()  # labels of another size (the correctives grew): a shard holds one size
        self.pending.append(item)
        if len(self.pending) >= self.shard_size:
            self.flush()

    def reject(self, name: str, reason: str) -> None:
        self.pending_rejects.append((name, reason))

    def flush(self) -> None:
        """Write pending crops as one shard and record them (and rejections) as done, atomically."""
        idx = self.index
        if self.pending:
            name = f"shard_{len(idx['shards']):05d}.npz"
            blobs = [it["jpeg"] for it in self.pending]
            offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
            labels = {k: np.stack([it[k] for it in self.pending]).astype(np.float32) for k in ("dense", "pseudo")
                      if all(k in it for it in self.pending)}
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".shard-", suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, jpeg=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets,
                         landmarks=np.stack([it["landmarks"] for it in self.pending]).astype(np.float32),
                         confidence=np.stack([it["confidence"] for it in self.pending]).astype(np.float32),
                         names=np.array([it["name"] for it in self.pending]),
                         val=np.array([it["val"] for it in self.pending]), **labels)
            os.replace(tmp, self.root / name)
            idx["shards"].append(name)
            for it in self.pending:
                key = "val" if it["val"] else "train"
                idx["counts"][key] = idx["counts"].get(key, 0) + 1
        for name, reason in self.pending_rejects:
            idx["rejected"][reason] = idx["rejected"].get(reason, 0) + 1
            idx["rejected_items"].append([name, reason])
        new = [it["name"] for it in self.pending] + [n for n, _ in self.pending_rejects]
        idx["done"].extend(new)
        self.done.update(new)
        self.pending, self.pending_rejects = [], []
        _write_json_atomic(self.root / INDEX, idx)


def iter_source(src: Path, video_step: int, max_frames: int) -> Iterator[tuple[str, str, np.ndarray | None, dict]]:
    """(item name, split group, RGB image or None when unreadable, extra) for each item of a source."""
    if src.is_dir() and (src / "synth.npz").is_file():
        z = np.load(src / "synth.npz")
        labels = {"dense", "params", "layout"} <= set(z.files)  # exact labels (older synth folders lack them)
        for i, lm in enumerate(z["landmarks"]):
            path = src / "images" / f"{i:06d}.png"
            img = cv2.imread(str(path))
            extra = {"landmarks": lm}
            if labels:
                extra.update(dense=z["dense"][i], params=z["params"][i], layout=z["layout"])
            yield (f"{src.name}/{path.name}", f"{src.name}/{i}",
                   None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB), extra)
    elif src.is_dir():
        for path in sorted(p for p in src.rglob("*") if p.suffix.lower() in IMAGE_EXTS):
            name = image_group(src.name, str(path.relative_to(src)))
            img = cv2.imread(str(path))
            yield name, name, None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB), {"pad": True}
    elif src.suffix.lower() in VIDEO_EXTS:
        try:
            frames = open_source(str(src))
        except FacetrackError:
            yield f"{src.name}#video", src.name, None, {}
            return
        kept = 0
        for frame in frames:
            frame_no, rgb = frame.index, frame.rgb
            if kept >= max_frames:
                break
            if frame_no % video_step == 0:
                kept += 1
                yield f"{src.name}#{frame_no:06d}", src.name, rgb, {}
    else:
        raise FacetrackError(f"not an image folder, synth folder or video: {src}")


def process(rgb: np.ndarray, extra: dict, finder: FaceFinder, min_conf: float, min_face: float
            ) -> tuple[dict | None, str | None]:
    """One image to a crop record, or a rejection reason."""
    if "landmarks" in extra:  # synthetic: exact landmarks
        lm = np.asarray(extra["landmarks"], np.float32)
        box = box_from_landmarks(lm)
        face = Face(crop(rgb, box), box.to_crop(lm), np.ones(68, np.float32), box, lm)
    else:
        face = finder(rgb, pad=0.25 if extra.get("pad") else 0.0)
        if face is None:
            return None, "no face"
        if float(face.confidence.mean()) < min_conf:
            return None, "low landmark confidence"
    if face.box.side / CROP_PER_FACE < min_face:
        return None, "face too small"
    h, w = rgb.shape[:2]
    pad = 0.25 * max(h, w) if extra.get("pad") else 0.0
    shifted = CropBox(face.box.cx + pad, face.box.cy + pad, face.box.side)
    if shifted.outside_fraction(int(w + 2 * pad), int(h + 2 * pad)) > 0.35:
        return None, "face at the image border"
    jpeg = crop_jpeg(face.crop)
    if jpeg is None:
        return None, "jpeg encoding failed"
    return {"jpeg": jpeg, "landmarks": face.landmarks, "confidence": face.confidence, "box": face.box}, None


def synthetic_labels(item: dict, extra: dict, layout: ParamLayout) -> dict:
    """A synthetic face's exact labels in the labelling model's layout: its 468 MediaPipe-equivalent points
    moved into the crop, and its parameters (expressions, identity and rotation are what training uses; the
    crop only scales and shifts the render, so they hold; correctives are zero)."""
    n_id, n_exp, n_refl, n_cg, n_cr = (int(v) for v in extra["layout"])
    x = torch.from_numpy(np.asarray(extra["params"], np.float32))[None]
    p = ParamLayout(n_id, n_exp, n_refl, n_cg, n_cr).split(x)
    p = {k: v for k, v in p.items() if not k.startswith("delta")}
    box = item["box"]
    return {**item, "dense": box.to_crop(np.asarray(extra["dense"], np.float32)),
            "pseudo": layout.join(p)[0].numpy()}


def process_tracked(rgb: np.ndarray, extra: dict, tracker, min_face: float) -> tuple[dict | None, str | None]:
    """One image through the app's tracker (MediaPipe + fit): crop, landmarks, dense landmarks, fitted x."""
    from facetrack.track.photos import PHOTO_PAD

    tracker.reset()
    r = tracker(rgb, pad=PHOTO_PAD if extra.get("pad") else 0.0)
    if r is None:
        return None, "no face"
    box = r.face.box
    if box.side / CROP_PER_FACE < min_face:
        return None, "face too small"
    h, w = rgb.shape[:2]
    pad = PHOTO_PAD * max(h, w) if extra.get("pad") else 0.0
    if CropBox(box.cx + pad, box.cy + pad, box.side).outside_fraction(int(w + 2 * pad), int(h + 2 * pad)) > 0.35:
        return None, "face at the image border"
    jpeg = crop_jpeg(r.face.crop)
    if jpeg is None:
        return None, "jpeg encoding failed"
    return {"jpeg": jpeg, "landmarks": r.face.landmarks, "confidence": r.face.confidence,
            "dense": box.to_crop(r.dense.points[:468]), "pseudo": r.recon.x}, None


def labelling_tracker(landmarker: Path, weights: Path | None, model_file: Path | None):
    """The app's tracker for pseudo-labels: MediaPipe, the encoder of `weights` as the first guess, the fit. The
    labels' pitch is the landmarks' alone: the encoder's own pitch must not teach the next encoder."""
    from facetrack import paths
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights
    from facetrack.track.fitter import FitConfig
    from facetrack.track.tracker import Tracker

    return Tracker(load_weights(paths.weights_dir(weights), FaceModel.load(model_file)), landmarker=landmarker,
                   smooth=False, fit_config=FitConfig(w_pitch_encoder=0.0))


def prepare(cache_dir: Path, sources: list[Path], video_step: int = 5, max_frames: int = 400,
            val_fraction: float = VAL_FRACTION, min_conf: float = 0.35, min_face: float = 40.0,
            limit: int | None = None, shard_size: int = 500, landmarks: str = "auto", progress: bool = True,
            tracker=None) -> dict:
    """Fill the cache from the sources; returns the index (counts and rejection reasons). With a `tracker`
    (labelling_tracker) the crops come with dense landmarks and pseudo-labels."""
    for src in sources:
        if not src.exists():
            raise FacetrackError(f"source not found: {src}")
    cache = Cache(cache_dir, shard_size)
    if cache.index["shards"] and ("labels" in cache.index) != (tracker is not None):
        raise FacetrackError(f"the cache {cache_dir} was built {'with' if 'labels' in cache.index else 'without'} "
                             "--landmarker: continue it the same way, or use a new folder")
    if tracker is not None:
        cache.index["labels"] = "MediaPipe 468 dense landmarks (crop px) and the fitted parameter vector"
    finder = FaceFinder(landmarks, min_conf) if tracker is None else None
    seen = Counter()
    bar = tqdm(desc="prepare", unit="img", disable=not progress, total=limit)
    try:
        for src in sources:
            for name, group, rgb, extra in iter_source(src, video_step, max_frames):
                if limit is not None and sum(seen.values()) >= limit:
                    break
                if name in cache.done:
                    continue
                seen[src.name] += 1
                bar.update()
                if rgb is None:
                    cache.reject(name, "unreadable")
                    tqdm.write(f"skipped unreadable {name}", file=sys.stderr)
                    continue
                if tracker is not None and "landmarks" not in extra:
                    item, reason = process_tracked(rgb, extra, tracker, min_face)
                elif tracker is not None and "dense" not in extra:
                    item, reason = None, "synthetic faces without exact labels (made by an older facetrack synth)"
                else:
                    item, reason = process(rgb, extra, finder, min_conf, min_face)
                    if item is not None and tracker is not None:
                        item = synthetic_labels(item, extra, tracker.model.layout)
                if item is None:
                    cache.reject(name, reason)
                else:
                    cache.add({**item, "name": name, "val": is_val(group, val_fraction)})
    finally:
        cache.flush()
        bar.close()
    return cache.index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.prepare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path)
    ap.add_argument("sources", type=Path, nargs="+")
    ap.add_argument("--video-step", type=int, default=5, help="keep every Nth video frame")
    ap.add_argument("--max-frames", type=int, default=400, help="frames kept per video at most")
    ap.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    ap.add_argument("--min-confidence", type=float, default=0.35, help="reject faces below this mean confidence")
    ap.add_argument("--limit", type=int, help="process at most this many new items")
    ap.add_argument("--landmarks", choices=["auto", "dlib", "fan"], default="auto")
    ap.add_argument("--landmarker", type=Path, help="MediaPipe face_landmarker.task: track with the app's front "
                    "end and fit, storing dense landmarks and pseudo-labels")
    ap.add_argument("--weights", type=Path, help="with --landmarker: the encoder for the first guess")
    ap.add_argument("--model", type=Path, help="face model file (default: the user cache)")
    args = ap.parse_args(argv)
    try:
        tracker = labelling_tracker(args.landmarker, args.weights, args.model) if args.landmarker else None
        idx = prepare(args.cache, args.sources, args.video_step, args.max_frames, args.val_fraction,
                      args.min_confidence, limit=args.limit, landmarks=args.landmarks, tracker=tracker)
    except FacetrackError as e:
        print(f"prepare: error: {e}", file=sys.stderr)
        return 2
    print(f"cache {args.cache}: {idx['counts']} accepted; rejected {idx['rejected']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
