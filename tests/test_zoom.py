"""Small faces: the tile search and the zoomed crop that follows a face too small for MediaPipe's detector."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facetrack.model.facemodel import FaceModel
from facetrack.vision.crop import face_size
from facetrack.vision.dense import DenseLandmarks, merge
from facetrack.vision.zoom import TILES, ZOOM_FACES, Zoom, tiles


def _face(cx: float, cy: float, size: float) -> DenseLandmarks:
    """A square of landmark points of the given size (sqrt of the box area) about (cx, cy)."""
    g = np.linspace(-size / 2, size / 2, 5)
    pts = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2) + [cx, cy]
    return DenseLandmarks(pts, np.zeros(len(pts)))


def test_tiles_cover_the_frame_with_overlap() -> None:
    for w, h in ((1280, 720), (1920, 1080), (721, 1283)):
        for share in TILES:
            regions = tiles(w, h, share)
            side = int(share * min(w, h))
            covered = np.zeros((h, w), int)
            for x, y, s in regions:
                assert s == side and 0 <= x <= w - s and 0 <= y <= h - s
                covered[y : y + s, x : x + s] += 1
            assert covered.min() >= 1
            # any face up to half a tile lies wholly inside some tile
            for cx, cy in ((side / 4, side / 4), (w / 2, h / 2), (w - side / 4 - 1, h - side / 4 - 1)):
                assert any(x <= cx - side / 4 and cx + side / 4 <= x + s and y <= cy - side / 4 and
                           cy + side / 4 <= y + s for x, y, s in regions)
    assert tiles(100, 80, 0.4) == []


def test_merge_keeps_each_face_once_largest_first() -> None:
    a, a_again, b = _face(100, 100, 50), _face(104, 98, 52), _face(400, 300, 80)
    faces = merge([a], [a_again, b])
    assert faces == [b, a]


def test_zoom_frames_follows_and_lets_go() -> None:
    z = Zoom()
    w, h = 1280, 720
    z.follow([_face(300, 400, 60)], w, h)
    x, y, s = z.region
    assert s == round(ZOOM_FACES * 60) and abs(x + s / 2 - 300) <= 1 and abs(y + s / 2 - 400) <= 1
    z.follow([_face(310, 405, 62)], w, h)  # a small move: the crop stays (no jitter from re-framing)
    assert z.region == (x, y, s)
    z.follow([_face(400, 400, 60)], w, h)  # near the edge: framed again about the face
    assert abs(z.region[0] + z.region[2] / 2 - 400) <= 1
    z.follow([_face(1250, 700, 60)], w, h)  # at the frame's corner: the crop stays inside the frame
    x, y, s = z.region
    assert x + s <= w and y + s <= h
    z.follow([_face(640, 360, 300)], w, h)  # large enough for the whole frame
    assert z.region is None
    z.follow([_face(300, 400, 60)], w, h)
    z.follow([], w, h)  # lost
    assert z.region is None


def _small_face_frames(shared_dir: Path, scale: float, n: int) -> list[np.ndarray]:
    """1280x720 frames with a talking head shrunk to `scale` (the clip's face is about 260 px) drifting right."""
    from facetrack.io.sources import open_source

    bg = cv2.GaussianBlur(cv2.resize(cv2.imread(str(sorted((shared_dir / "faces" / "utkface").glob("*.jpg"))[5])),
                                     (1280, 720)), (0, 0), 8)[..., ::-1]
    out = []
    for k, f in zip(range(n), open_source(str(shared_dir / "videos" / "liveportrait_d14.mp4")), strict=False):
        s = cv2.resize(f.rgb, None, fx=scale, fy=scale)
        frame = bg.copy()
        h, w = s.shape[:2]
        frame[600 - h : 600, 300 + 4 * k : 300 + 4 * k + w] = s
        out.append(np.ascontiguousarray(frame))
    return out


def test_a_small_face_in_a_stream_is_found_and_followed(weights: Path, model_file: Path, shared_dir: Path,
                                                       landmarker: Path) -> None:
    """A face about 90 px wide in 1280x720 frames, which MediaPipe alone does not find: found by the tile
    search, then followed in a crop as it moves, its expressions read."""
    from facetrack.net.weights import load_weights
    from facetrack.track.tracker import Tracker
    from facetrack.vision.dense import MediaPipeLandmarker

    frames = _small_face_frames(shared_dir, 0.35, 24)
    alone = MediaPipeLandmarker(landmarker)
    assert not any(alone(f, k / 30) for k, f in enumerate(frames[:6]))  # the case this is for
    alone.close()
    tracker = Tracker(load_weights(weights, FaceModel.load(model_file)), landmarker=landmarker)
    results = [tracker(f, timestamp=k / 30) for k, f in enumerate(frames)]
    assert all(r is not None for r in results) and tracker.zoom.region is not None
    sizes = [float(face_size(r.dense.points)) for r in results]
    xs = [r.dense.points[:, 0].mean() for r in results]
    assert 70 < np.median(sizes) < 110 and 70 < xs[-1] - xs[0] < 120  # the face itself, followed as it moves
    jaw = [r.recon.expressions["jawOpen"] for r in results]
    assert np.ptp(jaw) > 0.1  # the mouth still reads


def test_a_small_face_in_a_photo_is_found(weights: Path, model_file: Path, shared_dir: Path,
                                          landmarker: Path) -> None:
    """An AFLW2000 face in a frame three times its photo's size: found, and its landmarks as good as in the photo."""
    from facetrack.evaluation.landmarks import read_annotation
    from facetrack.evaluation.metrics import nme_bbox
    from facetrack.net.weights import load_weights
    from facetrack.track.photos import PHOTO_PAD
    from facetrack.track.tracker import Tracker
    from facetrack.vision.crop import pad_border
    from facetrack.vision.dense import MediaPipeLandmarker

    mat = shared_dir / "aflw2000-sample" / "image00430.mat"
    gt, _ = read_annotation(mat)
    photo = cv2.imread(str(mat.with_suffix(".jpg")))[..., ::-1]
    frame = np.full((1350, 1800, 3), 120, np.uint8)
    frame[400:850, 700:1150] = photo
    alone = MediaPipeLandmarker(landmarker)
    assert not alone(pad_border(frame, PHOTO_PAD)[0], None, still=True)
    alone.close()
    tracker = Tracker(load_weights(weights, FaceModel.load(model_file)), landmarker=landmarker)
    r = tracker(frame, pad=PHOTO_PAD)
    assert r is not None and nme_bbox(r.face.image_landmarks - 0.5, gt + [700, 400]) < 0.07


def test_a_face_coming_into_the_shot_ends_the_zoom(weights: Path, model_file: Path, shared_dir: Path,
                                                   landmarker: Path) -> None:
    """While a small face is followed in a crop, a large face walks in: within the whole-frame look (once a
    second) the tracker sees it and moves to it, as it would without the zoom."""
    from facetrack.io.sources import open_source
    from facetrack.net.weights import load_weights
    from facetrack.track.tracker import Tracker

    frames = _small_face_frames(shared_dir, 0.35, 50)
    big = [f.rgb for _, f in zip(range(50), open_source(str(shared_dir / "videos" / "liveportrait_d0.mp4")),
                                 strict=False)]
    tracker = Tracker(load_weights(weights, FaceModel.load(model_file)), landmarker=landmarker)
    xs = []
    for k, frame in enumerate(frames):
        if k >= 10:
            frame = frame.copy()
            frame[100:600, 750:1250] = cv2.resize(big[k], (500, 500))
        r = tracker(frame, timestamp=k / 30)
        assert r is not None
        xs.append(r.box.cx)
    assert all(x < 700 for x in xs[:10]) and all(x > 750 for x in xs[-10:])
    assert tracker.zoom.region is None
