"""The stream path of the landmark front end: MediaPipe's landmark model following a face from frame to frame."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from facetrack.errors import FacetrackError


@pytest.fixture(scope="module")
def clip(shared_dir: Path) -> list[np.ndarray]:
    from facetrack.io.sources import open_source

    video = open_source(str(shared_dir / "videos" / "liveportrait_d0.mp4"))
    return [f.rgb for _, f in zip(range(24), video, strict=False)]


def test_box_is_the_turned_square_about_the_landmarks() -> None:
    from facetrack.vision.follow import BOX_SCALE, EYE_LINE, SIZE, box_transform

    pts = np.random.default_rng(0).uniform(100, 200, (478, 2))
    pts[EYE_LINE[0]], pts[EYE_LINE[1]] = (120, 150), (180, 150)  # level eyes: no turn
    A = box_transform(pts)
    side = BOX_SCALE * np.ptp(pts, 0).max()
    centre = (pts.min(0) + pts.max(0)) / 2
    assert np.allclose(A @ [SIZE / 2, SIZE / 2, 1], centre)
    assert np.allclose(A @ [0, 0, 1], centre - side / 2) and np.allclose(A[:, :2], np.eye(2) * side / SIZE)
    pts[EYE_LINE[1]] = (180, 210)  # the far eye 45 degrees lower: the box's x axis runs along the eye line
    A = box_transform(pts)
    assert np.allclose(A[:, 0] / np.linalg.norm(A[:, 0]), np.array([1, 1]) / np.sqrt(2))


def test_follower_reads_what_mediapipe_reads(clip: list[np.ndarray], landmarker: Path) -> None:
    """Followed from its own last landmarks, the face stays within a pixel or two of MediaPipe's whole-frame
    landmarks on every frame (the boxes differ a little: MediaPipe's comes from its detector); a box on a
    featureless image holds no face."""
    from facetrack.vision.dense import MediaPipeLandmarker

    whole = MediaPipeLandmarker(landmarker, follow=False)
    follower = MediaPipeLandmarker(landmarker).follower
    reference = [whole(rgb, still=True)[0] for rgb in clip]
    whole.close()
    size = np.ptp(reference[0].points, 0).max()
    points = reference[0].points
    errors = []
    for rgb, ref in zip(clip[1:], reference[1:], strict=True):
        points, depth = follower(rgb, points)
        errors.append(np.linalg.norm(points - ref.points, axis=1).mean())
        assert np.corrcoef(depth, ref.depth)[0, 1] > 0.95
    assert max(errors) < 0.012 * size, (max(errors), size)
    assert follower(np.full_like(clip[0], 128), points) is None


def test_stream_goes_whole_only_when_it_must(clip: list[np.ndarray], landmarker: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from facetrack.vision import dense

    lm = dense.MediaPipeLandmarker(landmarker)
    looked: list[int] = []
    whole = lm._whole
    monkeypatch.setattr(lm, "_whole", lambda rgb: looked.append(len(seen)) or whole(rgb))
    seen: list[list] = []
    step = dense.LOOK_EVERY_S / 10  # within MAX_GAP_S: each frame follows the last
    for k in range(13):
        seen.append(lm(clip[k], k * step))
    assert looked == [0, 10] and all(len(f) == 1 for f in seen)  # the first frame, then once a LOOK_EVERY_S
    seen.append(lm(clip[13], 12 * step + 2 * dense.MAX_GAP_S))  # after a gap: from the whole frame
    seen.append(lm(clip[14], 12 * step + 2 * dense.MAX_GAP_S + step))
    lm.forget()  # a scene cut
    seen.append(lm(clip[15], 12 * step + 2 * dense.MAX_GAP_S + 2 * step))
    assert looked == [0, 10, 13, 15]
    seen.append(lm(np.full_like(clip[16], 128), None))  # the face is gone: the whole frame shows none either
    assert looked[-1] == 16 and seen[-1] == []
    seen.append(lm(clip[17], None))
    assert looked[-1] == 17 and len(seen[-1]) == 1
    lm.forget()
    looked.clear()
    start, frames = len(seen), round(dense.LOOK_EVERY_S / dense.FRAME_S)
    for k in range(frames + 2):  # no timestamps: FRAME_S apart, followed in between
        seen.append(lm(clip[k % len(clip)], None))
    assert len(looked) == 2 and looked[0] == start and looked[1] - start in (frames, frames + 1)
    assert all(len(f) == 1 for f in seen[start:])
    lm.close()


def test_stream_with_mediapipes_scores_keeps_followed_points(clip: list[np.ndarray], landmarker: Path) -> None:
    """`eval video`'s peer row: each frame also goes whole, for MediaPipe's own scores and pose matrix, while
    the points tracking uses are followed, as the app's are."""
    from facetrack.vision.dense import MediaPipeLandmarker

    scored, plain = MediaPipeLandmarker(landmarker, blendshapes=True), MediaPipeLandmarker(landmarker)
    for k, rgb in enumerate(clip[:6]):
        a, b = scored(rgb, k / 25)[0], plain(rgb, k / 25)[0]
        assert "jawOpen" in a.blendshapes and a.matrix.shape == (4, 4)
        assert np.allclose(a.points, b.points)
    scored.close()
    plain.close()


def test_bundle_without_the_landmark_model_is_one_line_error(tmp_path: Path) -> None:
    from facetrack.vision.follow import LandmarkFollower

    bundle = tmp_path / "face_landmarker.task"
    with zipfile.ZipFile(bundle, "w") as z:
        z.writestr("face_detector.tflite", b"not a model")
    with pytest.raises(FacetrackError, match="cannot load MediaPipe's landmark model") as e:
        LandmarkFollower(bundle)
    assert "\n" not in str(e.value)
    (tmp_path / "broken.task").write_bytes(b"not a zip")
    with pytest.raises(FacetrackError, match="landmark model"):
        LandmarkFollower(tmp_path / "broken.task")
