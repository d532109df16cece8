"""Small faces: where MediaPipe looks when the whole frame shows none.

MediaPipe's face detector (the short-range model inside face_landmarker.task) misses faces smaller than
about a tenth of the frame's longer side: in a 1280x720 frame a face 130 px wide is found, one 104 px wide is
not (a person 1.5-2 m from a 720p webcam, most people in a group photo). When the whole frame shows no face,
`Zoom` has the landmarker search overlapping square tiles; once a face is found so, each following frame
goes to the landmarker as a square crop about that face (ZOOM_FACES face sizes, moved only when the face
nears its edge or changes size), until the face is large enough for the whole frame again or is lost. While
zoomed, the whole frame is still looked at every LOOK_EVERY_S: a face that comes into the shot ends the zoom,
and the face picker (facetrack.track.choice) chooses among every face again.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facetrack.vision.crop import face_size
from facetrack.vision.dense import LOOK_EVERY_S, SAME_FACE, DenseLandmarks, merge, overlap

Region = tuple[int, int, int]  # x0, y0 and side of a square inside the frame, in pixels

ZOOM_FACES = 4.0  # the crop's side in face sizes: the face fills a quarter of it, well above the detector's floor
ZOOM_OFF = 0.2  # back to whole frames once the face is this share of the frame's longer side (found at 0.1)
KEEP = 0.2  # the crop stays put while the face's centre is within this share of its side from the crop's centre
RESIZE = 1.4  # ... and its size within this factor of the size it was framed for
TILES = (0.75, 0.4)  # search tiles, coarse to fine: these shares of the frame's shorter side, overlapping by half
SEARCH_EVERY_S = 1.0  # while no face is found in a stream, the tile search (several landmarker calls) this often



def tiles(width: int, height: int, share: float) -> list[Region]:
    """Overlapping square tiles of `share` of the frame's shorter side covering the frame (none when they would
    be too small for the landmarker)."""
    side = int(share * min(width, height))
    if side < 64:
        return []
    xs = np.unique(np.minimum(np.arange(0, width, side // 2), width - side))
    ys = np.unique(np.minimum(np.arange(0, height, side // 2), height - side))
    return [(int(x), int(y), side) for y in ys for x in xs]


class Zoom:
    """Where the landmarker looks in each frame of a stream; photos get the tile search at once."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.region: Region | None = None
        self.framed = 0.0  # the face size the region was framed for
        self.searched_at: float | None = None
        self.looked_at: float | None = None

    @staticmethod
    def view(image: np.ndarray, region: Region) -> np.ndarray:
        x, y, s = region
        return image[y : y + s, x : x + s]

    @staticmethod
    def shifted(faces: list[DenseLandmarks], region: Region) -> list[DenseLandmarks]:
        for d in faces:
            d.points += np.array(region[:2], np.float64)
        return faces

    def search(self, image: np.ndarray, look: Callable[[np.ndarray], list[DenseLandmarks]],
               timestamp: float | None = None) -> list[DenseLandmarks]:
        """The faces found in the tiles of the first size that finds any (frame pixels), each once; a stream
        zooms to the largest. The caller has just looked at the whole frame."""
        self.searched_at = self.looked_at = timestamp
        h, w = image.shape[:2]
        faces: list[DenseLandmarks] = []
        for share in TILES:
            faces = merge(*(self.shifted(look(self.view(image, r)), r) for r in tiles(w, h, share)))
            if faces:
                break
        if timestamp is not None:
            self.follow(faces, w, h)
        return faces

    def search_due(self, timestamp: float | None) -> bool:
        return timestamp is None or self.searched_at is None or timestamp - self.searched_at >= SEARCH_EVERY_S \
            or timestamp < self.searched_at

    def look_due(self, timestamp: float | None) -> bool:
        """Whether this zoomed frame also goes to the landmarker whole."""
        due = timestamp is None or self.looked_at is None or not 0 <= timestamp - self.looked_at < LOOK_EVERY_S
        if due:
            self.looked_at = timestamp
        return due

    def update(self, crop: list[DenseLandmarks], whole: list[DenseLandmarks] | None, width: int, height: int
               ) -> None:
        """After a zoomed frame (`whole`: the whole frame's faces, when it was looked at too): keep following
        the face in the crop, unless the whole frame shows a face of its own (one that came into the shot, or
        the followed face grown or moved out of the crop): then whole frames again, where the face picker
        chooses among every face."""
        if whole and any(all(overlap(w, c) <= SAME_FACE for c in crop) for w in whole):
            self.region = None
            return
        self.follow(crop, width, height)

    def follow(self, faces: list[DenseLandmarks], width: int, height: int) -> None:
        """Frame the next crop about the face nearest the current one (the largest when there is none); whole
        frames again when the face is large or gone."""
        if not faces:
            self.region = None
            return
        if self.region is None:
            face = faces[0]
        else:
            x, y, s = self.region
            centre = np.array([x + s / 2, y + s / 2])
            face = min(faces, key=lambda d: float(np.linalg.norm(d.points.mean(0) - centre)))
        size = float(face_size(face.points))
        side = int(round(ZOOM_FACES * size))
        if size >= ZOOM_OFF * max(width, height) or side >= min(width, height):
            self.region = None
            return
        c = (face.points.min(0) + face.points.max(0)) / 2
        if self.region is not None:
            x, y, s = self.region
            if np.abs(c - (x + s / 2, y + s / 2)).max() <= KEEP * s and 1 / RESIZE <= size / self.framed <= RESIZE:
                return
        x0 = int(np.clip(round(c[0] - side / 2), 0, width - side))
        y0 = int(np.clip(round(c[1] - side / 2), 0, height - side))
        self.region, self.framed = (x0, y0, side), size
