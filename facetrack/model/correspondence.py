"""Where MediaPipe's 468 canonical landmarks sit on the ICT face: a triangle and barycentric weights each.

Built by `facetrack model correspond`: the canonical face mesh (vertex i = landmark i) is aligned to the ICT
mean face by a similarity fitted on the 51 inner points of the 68-point scheme (both models name them), then
every canonical vertex is projected onto the closest point of the ICT face surface. Optionally it is then
refined on real frames (`refine`): each point moves along the surface to where the fitted faces put the
landmarker's points on average. The result is a small file shipped in the package
(`facetrack/model/data/mediapipe_ict.npz`).

`MP68` maps the 68 Multi-PIE points to MediaPipe indices (the jawline 0-16 to the face oval), so MediaPipe
can feed everything that speaks 68 points: crop framing, the 68-point NME, the sliding jawline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.model.facemodel import NARROW_FACE, FaceModel

DATA_FILE = Path(__file__).parent / "data" / "mediapipe_ict.npz"
N_CANONICAL = 468  # landmarks 468-477 are the irises: gaze, not shape; they have no surface point

MP68 = np.array([
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,  # jawline / face oval
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,  # brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,  # lips
])
FACE_OVAL = np.array([10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                      152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109])
CHIN = np.array([152, 148, 176, 377, 400])  # the oval's lowest points: on the chin itself for a near-frontal face
# Eyelid pairs (upper, lower) and inner-lip pairs: what makes blinks and mouth shapes observable.
EYELIDS = np.array([[159, 145], [158, 153], [160, 144], [386, 374], [385, 380], [387, 373],
                    [161, 163], [157, 154], [388, 390], [384, 381]])
INNER_LIPS = np.array([[13, 14], [82, 87], [312, 317], [81, 178], [311, 402], [80, 88], [310, 318]])
LIP_CORNERS = np.array([61, 291, 78, 308])
# The 16-point eye openings: synthetic ICT renders have no eyeballs, so these are refined on real frames only.
EYE_CONTOURS = np.array([33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
                         263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466])
EYE_CORNERS = np.array([[33, 133], [362, 263]])  # right eye, then left; each pair in the order of increasing x
# The brows' upper and lower edges, the subject's right brow then the left (above EYE_CORNERS' two rows).
BROWS = np.array([[70, 63, 105, 66, 107, 46, 53, 52, 65, 55], [300, 293, 334, 296, 336, 276, 283, 282, 295, 285]])


@dataclass
class Correspondence:
    """Landmark i lies at sum_k bary[i, k] * vertex[tri[i, k]] of the ICT mesh."""

    tri: np.ndarray  # (468, 3) int vertex indices
    bary: np.ndarray  # (468, 3) float32 barycentric weights
    source: str = ""
    # Rotation from MediaPipe's canonical face frame to the ICT model frame (ICT ~ R @ canonical): reported
    # head poses use the canonical frame, the convention of MediaPipe and ARKit-style trackers.
    head_frame: np.ndarray = field(default_factory=lambda: np.eye(3))
    # Each landmark's mirror partner (MediaPipe's canonical face is symmetric): mirror images in training keep
    # their dense labels. None in a file written before it existed.
    mirror: np.ndarray | None = None

    def points(self, vertices: np.ndarray) -> np.ndarray:
        """(..., V, 3) vertices -> (..., 468, 3) landmark points."""
        return np.einsum("...ikc,ik->...ic", vertices[..., self.tri, :], self.bary)

    def matrix(self, n_vertices: int):
        """(468, V) sparse matrix: points = M @ vertices (for basis rows)."""
        from scipy.sparse import csr_matrix

        rows = np.repeat(np.arange(len(self.tri)), 3)
        return csr_matrix((self.bary.ravel(), (rows, self.tri.ravel())), shape=(len(self.tri), n_vertices))

    def save(self, path: Path = DATA_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if self.mirror is None else {"mirror": self.mirror.astype(np.int32)}
        np.savez_compressed(path, tri=self.tri.astype(np.int32), bary=self.bary.astype(np.float32),
                            source=np.asarray(self.source), head_frame=self.head_frame.astype(np.float64), **extra)

    @classmethod
    def load(cls, path: Path = DATA_FILE) -> Correspondence:
        try:
            with np.load(path) as z:
                tri, bary, source = z["tri"].astype(np.int64), z["bary"].astype(np.float32), str(z["source"])
                frame = z["head_frame"].astype(np.float64) if "head_frame" in z.files else np.eye(3)
                mirror = z["mirror"].astype(np.int64) if "mirror" in z.files else None
        except (OSError, KeyError, ValueError) as e:
            raise FacetrackError(f"cannot read the landmark correspondence {path}: {e} "
                                 "(regenerate it: facetrack model correspond)") from None
        if tri.shape != (N_CANONICAL, 3) or bary.shape != (N_CANONICAL, 3):
            raise FacetrackError(f"the landmark correspondence {path} has shape {tri.shape}, expected (468, 3)")
        if frame.shape != (3, 3) or not np.allclose(frame @ frame.T, np.eye(3), atol=1e-6):
            raise FacetrackError(f"the landmark correspondence {path} holds no rotation as its head frame")
        if mirror is not None and (mirror.shape != (N_CANONICAL,) or (mirror[mirror] != np.arange(N_CANONICAL)).any()):
            raise FacetrackError(f"the landmark correspondence {path} holds no mirror pairing of the 468 points")
        return cls(tri, bary, source, frame, mirror)


def read_canonical(path: Path) -> np.ndarray:
    """(468, 3) vertices of MediaPipe's canonical_face_model.obj (cm, y up, z towards the viewer)."""
    try:
        verts = [list(map(float, ln.split()[1:4])) for ln in path.read_text().splitlines() if ln.startswith("v ")]
    except OSError as e:
        raise FacetrackError(f"cannot read the canonical face mesh {path}: {e.strerror or e}") from None
    if len(verts) != N_CANONICAL:
        raise FacetrackError(f"{path} has {len(verts)} vertices, MediaPipe's canonical face has {N_CANONICAL}")
    return np.asarray(verts, np.float64)


def mirror_pairs(canon: np.ndarray) -> np.ndarray:
    """(468,) each canonical landmark's partner across the face's plane of symmetry (x = 0): the nearest
    point to its mirror image (the canonical face is exactly symmetric; midline points pair with themselves)."""
    from scipy.spatial import cKDTree

    _, idx = cKDTree(canon).query(canon * [-1.0, 1.0, 1.0])
    if (idx[idx] != np.arange(len(canon))).any():
        raise FacetrackError("the canonical face is not symmetric about x = 0: no mirror pairing")
    return idx.astype(np.int64)


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation and translation taking src (N, 3) onto dst in the least-squares sense (Umeyama)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = float((S * np.diag(D)).sum() / (a**2).sum(1).mean())
    return s, R, md - s * R @ ms


def closest_on_surface(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray, k: int = 12
                       ) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the closest point on the triangles near its k nearest vertices: (N,) triangle index
    into `triangles` and (N, 3) barycentric weights."""
    from scipy.spatial import cKDTree

    used = np.unique(triangles)
    tree = cKDTree(vertices[used])
    _, near = tree.query(points, k=k)
    incident: dict[int, list[int]] = {}
    for t, tri in enumerate(triangles):
        for v in tri:
            incident.setdefault(int(v), []).append(t)
    out_t, out_w = np.zeros(len(points), np.int64), np.zeros((len(points), 3))
    for i, p in enumerate(points):
        cands = sorted({t for v in used[near[i]] for t in incident[int(v)]})
        best = (np.inf, 0, None)
        for t in cands:
            w = _closest_barycentric(p, vertices[triangles[t]])
            d = np.linalg.norm(w @ vertices[triangles[t]] - p)
            if d < best[0]:
                best = (d, t, w)
        out_t[i], out_w[i] = best[1], best[2]
    return out_t, out_w


def _closest_barycentric(p: np.ndarray, abc: np.ndarray) -> np.ndarray:
    """Barycentric weights of the point of triangle abc closest to p (Ericson, Real-Time Collision Detection)."""
    a, b, c = abc
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = ab @ ap, ac @ ap
    if d1 <= 0 and d2 <= 0:
        return np.array([1.0, 0, 0])
    bp = p - b
    d3, d4 = ab @ bp, ac @ bp
    if d3 >= 0 and d4 <= d3:
        return np.array([0, 1.0, 0])
    vc = d1 * d4 - d3 * d2
    if vc <= 0 and d1 >= 0 and d3 <= 0:
        v = d1 / (d1 - d3)
        return np.array([1 - v, v, 0])
    cp = p - c
    d5, d6 = ab @ cp, ac @ cp
    if d6 >= 0 and d5 <= d6:
        return np.array([0, 0, 1.0])
    vb = d5 * d2 - d1 * d6
    if vb <= 0 and d2 >= 0 and d6 <= 0:
        w = d2 / (d2 - d6)
        return np.array([1 - w, 0, w])
    va = d3 * d6 - d5 * d4
    if va <= 0 and (d4 - d3) >= 0 and (d5 - d6) >= 0:
        w = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        return np.array([0, 1 - w, w])
    denom = 1.0 / (va + vb + vc)
    v, w = vb * denom, vc * denom
    return np.array([1 - v - w, v, w])


def face_triangles(face: FaceModel) -> np.ndarray:
    """Triangles of the narrow face area (forehead to chin, no ears, neck or back of the head)."""
    return face.triangles[(face.triangles < NARROW_FACE).all(axis=1)]


UPPER_INNER_LIP = np.array([13, 82, 312, 81, 311, 80, 310])
LOWER_INNER_LIP = np.array([14, 87, 317, 178, 402, 88, 318])
JAW_MOTION_CM = 0.3  # a vertex that jawOpen moves further than this belongs to the lower lip or the jaw


def build(face: FaceModel, canonical: Path) -> Correspondence:
    """The initial correspondence: similarity alignment on the 51 inner points, closest surface points, and
    two fixes where the closed neutral mouth makes closest points ambiguous: the 51 inner 68-scheme points sit
    exactly on ICT's own landmark vertices, and inner-lip points go to the upper lip (vertices jawOpen leaves
    in place) or the lower lip (vertices it moves), so opening the mouth separates them."""
    canon = read_canonical(canonical)
    inner = np.arange(17, 68)
    s, R, t = similarity(canon[MP68[inner]], face.mean[face.landmarks[inner]].astype(np.float64))
    aligned = s * canon @ R.T + t
    tris = face_triangles(face)
    mean = face.mean.astype(np.float64)
    t_idx, w = closest_on_surface(aligned, mean, tris)
    tri, bary = tris[t_idx], w
    names = [str(n) for n in face.exp_names]
    moves = np.linalg.norm(face.exp_basis[names.index("jawOpen")], axis=1) > JAW_MOTION_CM
    tri_moves = moves[tris].all(axis=1)
    tri_still = (~moves[tris]).all(axis=1)
    for points, keep in ((UPPER_INNER_LIP, tri_still), (LOWER_INNER_LIP, tri_moves)):
        k_idx, k_w = closest_on_surface(aligned[points], mean, tris[keep])
        tri[points], bary[points] = tris[keep][k_idx], k_w
    anchors = np.setdiff1d(MP68[inner], np.concatenate([UPPER_INNER_LIP, LOWER_INNER_LIP]))
    tri[anchors] = np.repeat(face.landmarks[[list(MP68).index(a) for a in anchors]][:, None], 3, axis=1)
    bary[anchors] = [1.0, 0.0, 0.0]
    rms = float(np.sqrt(((np.einsum("ikc,ik->ic", mean[tri], bary) - aligned) ** 2).sum(1).mean()))
    return Correspondence(tri, bary.astype(np.float32),
                          f"canonical_face_model.obj aligned to the ICT mean face (scale {s:.3f}); "
                          f"RMS distance of the aligned canonical points to their surface points {rms:.2f} cm", R,
                          mirror_pairs(canon))


def lip_sets(face: FaceModel) -> dict[int, np.ndarray]:
    """Per inner-lip landmark, the face triangles it may lie on (upper lip: still under jawOpen; lower: moving)."""
    tris = face_triangles(face)
    names = [str(n) for n in face.exp_names]
    moves = np.linalg.norm(face.exp_basis[names.index("jawOpen")], axis=1) > JAW_MOTION_CM
    out = {}
    for points, keep in ((UPPER_INNER_LIP, (~moves[tris]).all(axis=1)), (LOWER_INNER_LIP, moves[tris].all(axis=1))):
        for p in points:
            out[int(p)] = tris[keep]
    return out


def refine(face: FaceModel, corr: Correspondence, offsets_cm: np.ndarray, points: np.ndarray, how: str
           ) -> Correspondence:
    """Move the given landmarks' surface points by model-frame offsets (cm: the median residual carried back
    into the model frame), each to the closest surface point of its allowed region; `how` goes into the
    file's description."""
    mean = face.mean.astype(np.float64)
    tri, bary = corr.tri.copy(), corr.bary.astype(np.float64).copy()
    allowed = lip_sets(face)
    everywhere = face_triangles(face)
    for p in points:
        target = np.einsum("kc,k->c", mean[tri[p]], bary[p]) + offsets_cm[p]
        tris = allowed.get(int(p), everywhere)
        t_idx, w = closest_on_surface(target[None], mean, tris)
        tri[p], bary[p] = tris[t_idx[0]], w[0]
    return Correspondence(tri, bary.astype(np.float32), corr.source + f"; refined {len(points)} points {how}",
                          corr.head_frame, corr.mirror)
