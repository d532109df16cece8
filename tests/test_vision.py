"""Crops, detection and landmarks on real shared photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facetrack.model.facemodel import FaceModel
from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import Camera
from facetrack.render.formation import base_params, view
from facetrack.vision.crop import CropBox, box_from_landmarks, crop
from facetrack.vision.faces import FaceFinder
from facetrack.vision.landmarks import MIRROR_68


def test_crop_framing_matches_the_model(face: FaceModel) -> None:
    """A face whose landmarks are the mean face's at the default pose is cropped to exactly that framing."""
    model = MultiLevelModel(face, 1, 1)
    p = base_params(model)
    v, r = model.base(p)
    lm = view(v, r, p, model.triangles, Camera()).uv[0, model.landmarks].numpy()
    # Place that face anywhere in a bigger image at another scale: the crop brings it back.
    image_lm = lm * 1.7 + np.array([300.0, 120.0])
    box = box_from_landmarks(image_lm)
    assert np.allclose(box.to_crop(image_lm), lm, atol=0.05)
    assert np.allclose(box.to_image(box.to_crop(image_lm)), image_lm, atol=1e-9)


def test_crop_resamples_pixel_centres() -> None:
    img = np.zeros((400, 400, 3), np.uint8)
    img[200, 100] = 255  # pixel centre at (100.5, 200.5)
    box = box_from_landmarks(np.array([[0.0, 0.0], [132.26, 132.26]]) + 50)
    c = crop(img, box)
    peak = np.unravel_index(c[..., 0].argmax(), c.shape[:2])
    expect = box.to_crop(np.array([[100.5, 200.5]]))[0]
    assert abs(peak[1] + 0.5 - expect[0]) <= 1 and abs(peak[0] + 0.5 - expect[1]) <= 1


def test_mirror_permutation_is_an_involution() -> None:
    assert sorted(MIRROR_68) == list(range(68)) and np.array_equal(MIRROR_68[MIRROR_68], np.arange(68))


def test_face_finder_on_real_photos(shared_dir: Path) -> None:
    finder = FaceFinder("dlib")
    img = cv2.cvtColor(cv2.imread(str(shared_dir / "aflw2000-sample" / "image00050.jpg")), cv2.COLOR_BGR2RGB)
    face = finder(img)
    assert face is not None and face.crop.shape == (240, 240, 3)
    assert 0.5 < face.confidence.mean() <= 1
    # Eyes above nose above mouth above chin in the crop, framed like the mean face.
    lm = face.landmarks
    assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean() < lm[8, 1]
    assert 0.45 < np.ptp(lm[:, 0]) / 240 < 0.62
    # Tracking from the previous landmarks gives the same face without detection.
    tracked = finder(img, previous=face.image_landmarks)
    assert np.abs(tracked.image_landmarks - face.image_landmarks).mean() < 2.0
    # No face in a blank image.
    assert finder(np.full((300, 300, 3), 128, np.uint8)) is None


def test_crop_of_a_large_face_is_that_of_the_whole_frame_blurred(shared_dir: Path) -> None:
    """A face close to a 1080p camera: the low-pass before resampling covers only the box (plus the blur's
    reach), and the crop is the one that blurring the whole frame gives, also where the box leaves the frame."""
    img = cv2.resize(cv2.imread(str(shared_dir / "aflw2000-sample" / "image00050.jpg")), (1920, 1080))
    for box in (CropBox(960.3, 540.7, 700.2), CropBox(150.5, 900.2, 800.0), CropBox(1900.0, 20.0, 600.0)):
        sigma = 0.5 * box.side / 240
        whole = cv2.warpAffine(cv2.GaussianBlur(img, (0, 0), sigma), box.affine(240), (240, 240),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        assert np.array_equal(crop(img, box), whole)
