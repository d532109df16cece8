"""Per-frame tracking of images: find or track the face, crop, run the encoder, reconstruct.

The face box of a frame comes from the previous frame's reconstruction (its projected landmarks), and
detection runs again only when the face is lost; with several faces, the largest is taken.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

import numpy as np

from facetrack.model.correspondence import MP68, N_CANONICAL, Correspondence
from facetrack.net.runtime import make_backend
from facetrack.net.weights import Weights
from facetrack.render.camera import Camera
from facetrack.render.reconstruction import NOTHING, Needs, Reconstruction, Reconstructor
from facetrack.track.appearance import AppearanceConfig, AppearanceFitter
from facetrack.track.choice import FacePicker
from facetrack.track.filters import BOX_FILTER, CoefficientFilter, OneEuro
from facetrack.track.fitter import DenseFitter, FitConfig, FitInfo
from facetrack.track.head import SOURCE_VFOV_DEG, HeadPose, head_pose
from facetrack.vision.crop import CropBox, box_from_landmarks, crop, pad_border, points_box
from facetrack.vision.dense import DenseLandmarks, MediaPipeLandmarker, merge
from facetrack.vision.faces import Face, FaceFinder
from facetrack.vision.zoom import Zoom


@dataclass
class FrameResult:
    """A frame's reconstruction and where it sits in the frame; `face` is None for replayed frames."""

    recon: Reconstruction
    box: CropBox  # the 240x240 crop in input-image pixels
    face: Face | None = None  # crop, detected landmarks, detector box
    ms: dict[str, float] = field(default_factory=dict)  # time per stage
    photometric: dict[str, float] = field(default_factory=dict)  # per level, computed or recorded
    dense: DenseLandmarks | None = None  # MediaPipe's landmarks, blendshapes and pose, when it runs
    fit: FitInfo | None = None  # the per-frame fit, when it runs
    present: bool = True  # False: no face in this frame; the last reconstruction is held
    lost_frames: int = 0  # frames since the face was last seen
    frame_size: tuple[int, int] | None = None  # (width, height) of a stream's frames; None for a photo
    source_vfov_deg: float = SOURCE_VFOV_DEG  # the stream's camera (facetrack.track.head)

    @cached_property
    def head(self) -> HeadPose:
        """The head's pose in the source camera (a stream), or in the crop's camera (a photo); computed once
        (the stream and the window's plots both read it)."""
        return head_pose(self.recon, self.box, self.frame_size, self.source_vfov_deg)

    @property
    def x(self) -> np.ndarray:
        return self.recon.x

    @property
    def landmarks_image(self) -> np.ndarray:
        """(68, 2) final-level model landmarks in input-image pixels."""
        return self.box.to_image(self.recon.landmarks.astype(np.float64))


@dataclass
class Found:
    """A frame's face before the encoder: the crop and landmarks (None: no face), and the time it took."""

    face: Face | None
    dense: DenseLandmarks | None
    ms: float
    new_face: bool = False  # another face than the last frame's (a switch or a scene cut): start afresh
    frame_size: tuple[int, int] = (0, 0)  # (width, height) of the frame it was found in


@dataclass
class Sighting:
    """MediaPipe's faces in a frame (image pixels), before one is chosen and cropped: what the landmark thread
    hands on, so that choosing, the crop box's filter and the crop (about 0.7 ms a frame) run on the other
    thread and the landmark thread, which bounds the frame rate, does no more than it must."""

    image: np.ndarray  # the frame as the faces were found in it (with its border when padded)
    pad: int  # that border in pixels
    faces: list[DenseLandmarks]
    complete: bool  # the whole frame was looked at (not only the zoomed crop about a small face)
    cut: bool  # the frame starts a new shot
    ms: float


class Tracker:
    """Callable on RGB frames; keeps what tracking needs from the previous frame.

    Front ends: MediaPipe's 478 landmarks when its model file is given (then the encoder's guess is refined
    by the per-frame fit and smoothed by the One-Euro filter), else dlib's 68 landmarks and the encoder alone.
    `mediapipe_scores`: each result's `dense` carries MediaPipe's own blendshape scores (eval video's peer row;
    tracking does not use them). `source_vfov_deg`: the vertical field of view of a stream's camera, for the head
    pose in it (facetrack.track.head).
    """

    def __init__(self, weights: Weights, backend: str = "auto", landmarks: str = "auto",
                 landmarker: Path | None = None, fit: bool = True, smooth: bool = True,
                 fit_config: FitConfig | None = None, correspondence: Correspondence | None = None,
                 face_rank: int = 1, appearance: AppearanceConfig | None | bool = True,
                 mediapipe_scores: bool = False, source_vfov_deg: float = SOURCE_VFOV_DEG) -> None:
        self.weights = weights
        self.source_vfov_deg = source_vfov_deg
        self.model = weights.model.cpu().eval()
        self.backend = make_backend(weights, backend)
        self.camera = Camera()
        self.reconstruct = Reconstructor(self.model, self.camera)
        self.slices = self.model.layout.slices()
        self.dense = MediaPipeLandmarker(landmarker, mediapipe_scores) if landmarker is not None else None
        self.finder = FaceFinder(landmarks) if self.dense is None else None
        self.fitter = DenseFitter(self.model, correspondence or Correspondence.load(), self.camera, fit_config) \
            if self.dense is not None and fit else None
        # lighting and reflectance from the image, for frames whose levels are drawn, recorded or evaluated
        self.appearance = None if appearance is False else \
            AppearanceFitter(self.model, self.camera, appearance if isinstance(appearance, AppearanceConfig) else None)
        self.smoother = CoefficientFilter() if self.dense is not None and smooth else None
        # The crop box follows the raw landmarks; its jitter would pass straight into the image-space result
        # (pose and expressions are filtered in crop coordinates), so the box is filtered too.
        self.box_filter = OneEuro(*BOX_FILTER) if self.dense is not None and smooth else None
        self.previous: np.ndarray | None = None
        self.picker = FacePicker(face_rank)  # which of several faces (MediaPipe front end)
        self.zoom = Zoom()  # where MediaPipe looks for a face too small for the whole frame
        self._fresh = True

    @property
    def front_end(self) -> str:
        """What runs, in words, for the status line and summaries."""
        if self.dense is None:
            return "dlib 68 landmarks + encoder"
        return "MediaPipe 478 landmarks + encoder" + (" + fit" if self.fitter else "") + \
            (" + One-Euro" if self.smoother else "")

    def reset(self) -> None:
        """A new source or an unrelated photo: nothing carries over (not even the identity)."""
        self._fresh = True
        self.picker.reset()
        self.zoom.reset()
        if self.dense is not None:
            self.dense.forget()
        self._lost(keep_identity=False)

    def relearn(self) -> None:
        """The fit learns this person's identity and resting face again from the next frames (DenseFitter.relearn);
        nothing without the fit."""
        if self.fitter is not None:
            self.fitter.relearn()

    def _lost(self, keep_identity: bool = True) -> None:
        """The face is gone: forget the last frame and the filters' state; keep the person unless told not to."""
        self.previous = None
        if self.fitter is not None:
            self.fitter.reset(keep_identity=keep_identity)
        if self.appearance is not None and not keep_identity:
            self.appearance.reset()
        if self.smoother is not None:
            self.smoother.reset()
            self.box_filter.reset()

    def sight(self, rgb: np.ndarray, pad: float = 0.0, timestamp: float | None = None) -> Sighting:
        """MediaPipe's half of `find` (call in frame order; it may run a frame ahead on another thread)."""
        t0 = time.perf_counter()
        img, p = pad_border(rgb, pad)
        cut = self.picker.scene_cut(rgb) if timestamp is not None else False
        if cut:
            self.zoom.reset()
            self.dense.forget()
        faces, complete = self._landmarks(img, timestamp, self._fresh and timestamp is None)
        self._fresh = False
        for d in faces:
            d.points -= p
        return Sighting(img, p, faces, complete, cut, 1e3 * (time.perf_counter() - t0))

    def _landmarks(self, img: np.ndarray, timestamp: float | None, still: bool) -> tuple[list[DenseLandmarks], bool]:
        """MediaPipe's faces in the frame (pixels, largest first) and whether the whole frame was looked at.
        A face too small for the detector in the whole frame is searched for in tiles and then followed in a
        crop (facetrack.vision.zoom); crops and tiles are single images to MediaPipe (IMAGE mode)."""
        zoom = self.zoom

        def look(view: np.ndarray) -> list[DenseLandmarks]:
            return self.dense(view, None, still=True)

        if zoom.region is None:
            faces = self.dense(img, timestamp, still=still)
            if faces or not zoom.search_due(timestamp):
                return faces, True
            return zoom.search(img, look, timestamp), True
        region = zoom.region
        near = zoom.shifted(look(zoom.view(img, region)), region)
        whole = self.dense(img, timestamp) if zoom.look_due(timestamp) or not near else None
        zoom.update(near, whole, img.shape[1], img.shape[0])
        return merge(near, whole or []), whole is not None

    def _find(self, rgb: np.ndarray, pad: float, timestamp: float | None, sighting: Sighting | None
              ) -> tuple[Face | None, DenseLandmarks | None, bool]:
        if self.dense is None:
            return self.finder(rgb, pad=pad, previous=self.previous), None, False
        s = sighting or self.sight(rgb, pad, timestamp)
        img, p, faces = s.image, s.pad, s.faces
        if not faces:
            return None, None, False
        had_face = self.picker.center is not None
        dense, new = self.picker(faces, timestamp, s.cut, s.complete)
        if new and had_face and self.box_filter is not None:
            self.box_filter.reset()
        lm68 = dense.points[MP68]
        box = box_from_landmarks(lm68)
        if self.box_filter is not None and timestamp is not None:
            box = CropBox(*map(float, self.box_filter(np.array([box.cx, box.cy, box.side]), timestamp)))
        shifted = CropBox(box.cx + p, box.cy + p, box.side)
        face = Face(crop(img, shifted), box.to_crop(lm68).astype(np.float32), np.ones(len(lm68), np.float32), box,
                    lm68, points_box(lm68))
        return face, dense, new and had_face

    @property
    def can_look_ahead(self) -> bool:
        """Finding the face in frame t+1 needs nothing from frame t's fit (MediaPipe tracks on its own), so it
        can run on another core while frame t is finished; dlib tracking starts from frame t's result."""
        return self.dense is not None

    def find(self, rgb: np.ndarray, pad: float = 0.0, timestamp: float | None = None,
             sighting: Sighting | None = None) -> Found:
        """The first half of a frame: landmarks and the crop (call in frame order); `sighting`: the frame's
        `sight` when it ran ahead."""
        t0 = time.perf_counter()
        face, dense, new = self._find(rgb, pad, timestamp, sighting)
        ahead = sighting.ms if sighting is not None else 0.0
        return Found(face, dense, ahead + 1e3 * (time.perf_counter() - t0), new, (rgb.shape[1], rgb.shape[0]))

    def finish(self, found: Found, needs: Needs = NOTHING, timestamp: float | None = None) -> FrameResult | None:
        """The second half: encoder, fit, filter, reconstruction."""
        face, dense = found.face, found.dense
        if face is None:
            self._lost()
            return None
        if found.new_face:  # another person (or the same after a cut): calibrate afresh
            self._lost(keep_identity=False)
        t1 = time.perf_counter()
        x = self.backend(face.crop[None])[0]
        t2 = time.perf_counter()
        info = None
        if self.fitter is not None and dense is not None:
            pts = face.box.to_crop(dense.points[:N_CANONICAL])
            x, info = self.fitter(x, pts, dense.depth[:N_CANONICAL] * face.box.scale, stream=timestamp is not None)
        if self.smoother is not None and timestamp is not None:
            x = self.smoother(x, self.slices, timestamp)
        t3 = time.perf_counter()
        refine = None if self.appearance is None else partial(self.appearance, stream=timestamp is not None)
        recon = self.reconstruct(x, needs, face.crop, refine)
        result = FrameResult(recon, face.box, face, photometric=recon.photometric(), dense=dense, fit=info,
                             frame_size=found.frame_size if timestamp is not None else None,
                             source_vfov_deg=self.source_vfov_deg)
        self.previous = result.landmarks_image
        result.ms = {"detect_landmarks": found.ms, "encoder": 1e3 * (t2 - t1), "fit": 1e3 * (t3 - t2),
                     "model": 1e3 * (time.perf_counter() - t3)}
        if refine is not None and needs.levels:
            result.ms["appearance"] = self.appearance.last_ms
            result.ms["model"] -= self.appearance.last_ms
        return result

    def __call__(self, rgb: np.ndarray, pad: float = 0.0, needs: Needs = NOTHING,
                 timestamp: float | None = None) -> FrameResult | None:
        """`timestamp` (seconds, increasing) marks frames of one stream; without it frames are unrelated photos."""
        return self.finish(self.find(rgb, pad, timestamp), needs, timestamp)
