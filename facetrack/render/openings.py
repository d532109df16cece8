"""Eyeballs and a mouth interior for synthetic renders.

ICT-FaceKit Light's face area has holes at the eyes and the mouth. Rendered as they are, a synthetic face
shows the background photo through them, a face no landmarker has seen, and MediaPipe read such faces as
blinking (eyeBlink's recovery error on the evaluation faces was 0.31 with holes, 0.04 with eyes). Here each
eye opening gets an eyeball (sclera, iris, pupil) fixed to the head behind it, which the lids close over and
the eyeLook shapes turn, and the inner lip rim a dark mouth interior that opens with the jaw.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.optimize import least_squares

from facetrack.io.arkit import eye_angles
from facetrack.model.facemodel import FaceModel
from facetrack.model.ict import boundary_edges

EYEBALL_RADIUS = 1.2  # cm, an adult's eyeball
EYE_SETBACK = 0.08  # cm the eyeball sits behind the sphere through the eye's rim, so that closed lids cover it
MOUTH_DEPTH = 1.6  # cm from the inner lip rim back to the deepest point of the mouth interior
SCLERA = np.array([0.78, 0.74, 0.70])
PUPIL = np.array([0.03, 0.03, 0.03])
IRISES = np.array([[0.28, 0.16, 0.08], [0.16, 0.10, 0.05], [0.30, 0.38, 0.45], [0.26, 0.30, 0.18]])
MOUTH = np.array([0.20, 0.07, 0.07])
IRIS_ANGLE, PUPIL_ANGLE = 0.46, 0.17  # half-angles (radians) of iris and pupil seen from the eyeball's centre
# Polar angles of the sphere's rings from its front pole: dense over the iris, sparse behind
RINGS = np.array([0.06, 0.12, PUPIL_ANGLE, 0.24, 0.32, 0.40, IRIS_ANGLE, 0.52, 0.65, 0.8, 1.0, 1.25, 1.55, 1.9,
                  2.3, 2.75])
SEGMENTS = 24


def boundary_loops(triangles: np.ndarray) -> list[np.ndarray]:
    """The mesh's holes: each closed loop of edges that only one triangle uses, as ordered vertex indices."""
    neighbours: dict[int, list[int]] = {}
    for a, b in boundary_edges(triangles):
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    loops, seen = [], set()
    for start in neighbours:
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = next((n for n in neighbours[cur] if n != prev and n not in seen), None)
            if nxt is None:
                break
            loop.append(nxt)
            seen.add(nxt)
            prev, cur = cur, nxt
        loops.append(np.asarray(loop))
    return loops


@cache
def _sphere() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit sphere with its front pole at +z: vertices, triangles, each vertex's angle from the pole (built
    once: every sample's eyeballs are this sphere moved)."""
    phi = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)
    ring = np.stack([np.outer(np.sin(RINGS), np.cos(phi)), np.outer(np.sin(RINGS), np.sin(phi)),
                     np.outer(np.cos(RINGS), np.ones(SEGMENTS))], -1).reshape(-1, 3)
    v = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    angle = np.concatenate([[0.0], np.repeat(RINGS, SEGMENTS), [np.pi]])
    tris = [(0, 1 + j, 1 + (j + 1) % SEGMENTS) for j in range(SEGMENTS)]
    for r in range(len(RINGS) - 1):
        a, b = 1 + r * SEGMENTS, 1 + (r + 1) * SEGMENTS
        for j in range(SEGMENTS):
            k = (j + 1) % SEGMENTS
            tris += [(a + j, b + j, b + k), (a + j, b + k, a + k)]
    last, bottom = 1 + (len(RINGS) - 1) * SEGMENTS, len(v) - 1
    tris += [(last + j, bottom, last + (j + 1) % SEGMENTS) for j in range(SEGMENTS)]
    return v, np.asarray(tris), angle


@dataclass
class Eyes:
    """One person's eyes in a synthetic sample: iris colour (linear RGB) and gaze (yaw, pitch in radians)."""

    iris: np.ndarray
    gaze: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Eyes:
        """Brown to blue irises; a small gaze, the same for both eyes."""
        return cls(IRISES[rng.integers(len(IRISES))] * rng.uniform(0.8, 1.2), np.radians(rng.normal(0, 5, 2)))


@dataclass
class Openings:
    """The rims of the two eye openings and of the mouth (ordered vertex indices of the face mesh)."""

    eyes: tuple[np.ndarray, np.ndarray]
    mouth: np.ndarray

    @classmethod
    def of(cls, face: FaceModel) -> Openings:
        """Each hole is the loop nearest to its 68-point landmarks (eyes 36-41 and 42-47, inner lips 60-67)."""
        loops = boundary_loops(face.triangles)

        def nearest(points: slice) -> np.ndarray:
            centre = face.mean[face.landmarks[points]].mean(0)
            return min(loops, key=lambda lp: np.linalg.norm(face.mean[lp].mean(0) - centre))

        return cls((nearest(slice(36, 42)), nearest(slice(42, 48))), nearest(slice(60, 68)))

    def geometry(self, rest: np.ndarray, posed: np.ndarray, eyes: Eyes, look: np.ndarray, offset: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Extra model-frame vertices (E, 3), their albedo (E, 3) and triangles (indices from `offset`, the face's
        vertex count). `rest`: this identity without expression (the eyeballs sit in the skull, the lids move
        over them); `posed`: with the expression (the mouth interior hangs from the lips); `look`: (2, 2) each
        eye's turn (yaw towards +x, pitch upwards, radians) from the expression's eyeLook shapes."""
        unit, tris, angle = _sphere()
        colour = np.where((angle < IRIS_ANGLE)[:, None], eyes.iris, SCLERA)
        colour = np.where((angle < PUPIL_ANGLE)[:, None], PUPIL, colour)
        verts, albedo, faces = [], [], []
        n = offset
        for rim, turn in zip(self.eyes, look, strict=True):
            centre = _eyeball_centre(rest[rim])
            verts.append(centre + EYEBALL_RADIUS * unit @ _turn(*(eyes.gaze + turn)).T)
            albedo.append(colour)
            faces.append(tris + n)
            n += len(unit)
        lips = posed[self.mouth]
        back = lips.mean(0) - np.array([0.0, 0.0, MOUTH_DEPTH])
        verts.append(back[None])
        albedo.append(MOUTH[None])  # the rim keeps the lips' colour: the interior darkens towards the back
        faces.append(np.stack([self.mouth, np.roll(self.mouth, -1), np.full(len(self.mouth), n)], 1))
        return np.concatenate(verts), np.concatenate(albedo), np.concatenate(faces)


def _turn(yaw: float, pitch: float) -> np.ndarray:
    """Rotation taking the eyeball's front (+z) towards +x by yaw and upwards (+y) by pitch."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    return np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])


def eye_look(names: list[str], weights: np.ndarray) -> np.ndarray:
    """(2, 2) yaw (towards +x, the subject's left) and pitch (up) of the eyes in the order of `Openings.eyes`
    (the subject's right eye, then the left) from the eyeLook weights, as Live Link's eye angles read them."""
    a = eye_angles(names, np.asarray(weights, np.float64)[None])[0]  # left yaw, pitch (down), roll, right ...
    return np.array([[a[3], -a[4]], [a[0], -a[1]]])


def _eyeball_centre(rim: np.ndarray) -> np.ndarray:
    """The centre of the eyeball-sized sphere through the rim of the eye opening (behind the rim), set back a
    little."""
    start = rim.mean(0) - np.array([0.0, 0.0, 0.8 * EYEBALL_RADIUS])
    fit = least_squares(lambda c: np.linalg.norm(rim - c, axis=1) - EYEBALL_RADIUS, start)
    centre = fit.x if fit.x[2] < rim[:, 2].mean() else start
    return centre - np.array([0.0, 0.0, EYE_SETBACK])
