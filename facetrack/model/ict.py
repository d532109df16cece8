"""Import an ICT-FaceKit `FaceXModel` folder into facetrack's compact face model file.

We keep the full face area (ICT vertices 0-9408, polygons 0-9229): it holds the whole visible face with
forehead, ears, jaw and upper neck, and excludes the back of the head, mouth socket, eyeballs, teeth and
lashes, which a monocular crop never shows reliably and the point-based photometric term cannot use.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facetrack.errors import FacetrackError
from facetrack.model.facemodel import CONTOUR_LANDMARKS, FaceModel
from facetrack.model.obj import find_obj, read_obj

ICT_VERTICES = 26719
FACE_VERTICES = 9409  # full face area, vertices [0:9408]
FACE_POLYGONS = 9230  # polygons [0:9229]
N_IDENTITY = 100
SKIN_TONE = (0.72, 0.54, 0.45)  # plain base albedo until a reflectance model is learned

# From the ICT-FaceKit README (0-based): Multi-PIE 68 landmarks and the jawline lists.
LANDMARKS_68 = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088, 3443, 268,
    493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360,
    1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200,
    6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
)
RIGHT_JAWLINE = (1278, 1272, 12, 1834, 243, 781, 2199, 1447)  # substitutes Multi-PIE 0-7
LEFT_JAWLINE = (3661, 4390, 3022, 2484, 4036, 2253, 3490, 3496)  # substitutes Multi-PIE 9-16
RIGHT_JAWLINE_EXT = (1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801, 1447, 800)
LEFT_JAWLINE_EXT = (3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466, 3490, 3493,
                    3496, 3498)

CONTOUR_STRIP_HALF_WIDTH = 0.8  # cm: at least three vertex rows on the cheeks
CONTOUR_STRIP_INWARD = 0.55  # fraction of the way from the jaw towards the nose the strip reaches
CONTOUR_STRIP_OUTWARD = 0.45  # fraction beyond the jaw (towards ear and neck), for heads turned away


def _check_count(path: Path, n: int) -> None:
    if n != ICT_VERTICES:
        raise FacetrackError(f"wrong vertex count in {path}: {n}, expected {ICT_VERTICES} (ICT-FaceKit Light)")


def _read_vertices(folder: Path, stem: str) -> np.ndarray:
    path = find_obj(folder, stem)
    mesh = read_obj(path)
    _check_count(path, len(mesh.vertices))
    return mesh.vertices


def triangulate(polygons: list[np.ndarray]) -> np.ndarray:
    """Fan-triangulate quads and triangles, keeping their winding."""
    tris = [(p[0], p[k], p[k + 1]) for p in polygons for k in range(1, len(p) - 1)]
    return np.asarray(tris, dtype=np.int32)


def one_rings(triangles: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR 1-ring neighbourhoods from the triangle edges."""
    e = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    e = np.unique(np.concatenate([e, e[:, ::-1]]), axis=0)  # sorted by source vertex, then neighbour
    ptr = np.zeros(n + 1, dtype=np.int32)
    np.add.at(ptr, e[:, 0] + 1, 1)
    return np.cumsum(ptr).astype(np.int32), e[:, 1].astype(np.int32)


def boundary_edges(triangles: np.ndarray) -> np.ndarray:
    """(E, 2) the edges only one triangle uses (vertex pairs, smaller index first): the holes' and rim's."""
    e = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    edges, counts = np.unique(e, axis=0, return_counts=True)
    return edges[counts == 1]


def photometric_mask(triangles: np.ndarray, ring_ptr: np.ndarray, ring_idx: np.ndarray, n: int,
                     rings: int = 2) -> np.ndarray:
    """Vertices more than `rings` edges from the mesh boundary (eye and mouth holes, outer rim).

    A point sample on a hole's rim mixes face and background, so the photometric term skips them.
    """
    near = np.zeros(n, bool)
    near[boundary_edges(triangles).ravel()] = True
    for _ in range(rings):
        near = near | (np.add.reduceat(near[ring_idx].astype(np.int32), ring_ptr[:-1]) > 0)
    return ~near


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    s = np.clip(((p - a) @ ab) / max(float(ab @ ab), 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + s[:, None] * ab), axis=-1)


def _polyline_distance(p: np.ndarray, line: np.ndarray, closed: bool) -> np.ndarray:
    pts = np.concatenate([line, line[:1]]) if closed else line
    return np.min([_segment_distance(p, pts[i], pts[i + 1]) for i in range(len(pts) - 1)], axis=0)


def _inside(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test in 2D."""
    inside = np.zeros(len(p), dtype=bool)
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        crosses = (a[1] > p[:, 1]) != (b[1] > p[:, 1])
        x_at = a[0] + (p[:, 1] - a[1]) * (b[0] - a[0]) / ((b[1] - a[1]) or 1e-12)
        inside ^= crosses & (p[:, 0] < x_at)
    return inside


def vertex_normals_np(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (numpy twin of the torch version, for import-time tables)."""
    fn = np.cross(v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, tris[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def contour_candidates(mean: np.ndarray, landmarks: np.ndarray) -> list[np.ndarray]:
    """Per jawline landmark, a strip of vertices across the jaw line, from behind the jaw to the cheek.

    The strip runs from the landmark towards the nose; when the head turns, the silhouette moves along it,
    and the loss picks the candidate closest to the detected point's camera ray.
    """
    nose = mean[landmarks[27:36]].mean(axis=0)
    jaw_subst = {**dict(zip(range(8), RIGHT_JAWLINE, strict=True)),
                 **dict(zip(range(9, 17), LEFT_JAWLINE, strict=True))}
    out = []
    for i in CONTOUR_LANDMARKS:
        p = mean[landmarks[i]]
        a = p - CONTOUR_STRIP_OUTWARD * (nose - p)
        b = p + CONTOUR_STRIP_INWARD * (nose - p)
        near = _segment_distance(mean, a, b) < CONTOUR_STRIP_HALF_WIDTH
        extra = [landmarks[i]] + ([jaw_subst[i]] if i in jaw_subst else [])
        out.append(np.union1d(np.flatnonzero(near), extra).astype(np.int32))
    return out


def feature_masks(mean: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Eyes, brows, lips and nostrils as vertex masks, drawn around the 68 landmarks in the frontal
    (x, y) plane of the mean face (surface facing forwards only, so nothing behind is caught)."""
    xy = mean[:, :2]
    lm = mean[landmarks, :2]
    front = vertex_normals_np(mean, triangles)[:, 2] > 0
    eyes = np.zeros(len(mean), bool)
    for eye in (lm[36:42], lm[42:48]):
        eyes |= _inside(xy, eye) | (_polyline_distance(xy, eye, closed=True) < 0.8)
    brows = np.zeros(len(mean), bool)
    for brow in (lm[17:22], lm[22:27]):
        brows |= _polyline_distance(xy, brow, closed=False) < 0.9
    lips = _inside(xy, lm[48:60]) | (_polyline_distance(xy, lm[48:60], closed=True) < 0.5)
    nostrils = _polyline_distance(xy, lm[31:36], closed=False) < 0.6
    return {k: m & front for k, m in
            {"eyes": eyes, "brows": brows, "lips": lips, "nostrils": nostrils}.items()}


def skin_mask(mean: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Face skin without eyes, brows, lips, nostrils, beard-prone regions, ears and hairline.

    Only front-facing vertices count, which drops the ears and the sides of the head.
    """
    xy = mean[:, :2]
    lm = mean[landmarks, :2]
    keep = vertex_normals_np(mean, triangles)[:, 2] > 0.35
    keep &= np.abs(xy[:, 0]) < 0.9 * np.abs(lm[0, 0])  # inside the jaw width
    keep &= xy[:, 1] < lm[17:27, 1].max() + 3.5  # below the hairline
    keep &= xy[:, 1] > lm[48, 1]  # above the mouth corners: chin, jaw and lower cheeks grow beard
    for m in feature_masks(mean, triangles, landmarks).values():
        keep &= ~m
    upper_lip = (np.abs(xy[:, 0]) < abs(lm[48, 0]) + 0.5) & (xy[:, 1] < lm[33, 1])  # moustache
    return keep & ~upper_lip


def build_from_ict(folder: Path, reflectance_modes: int = 80) -> FaceModel:
    """Read the FaceXModel folder and assemble the face-area model (see module docstring)."""
    index_file = folder / "vertex_indices.json"
    if not index_file.is_file():
        raise FacetrackError(f"missing file: {index_file} (part of the ICT-FaceKit FaceXModel folder)")
    try:
        indices = json.loads(index_file.read_text())
        exp_names = list(indices["expressions"])
        landmarks = np.asarray(indices["idx_to_landmark_verts"], dtype=np.int32)
    except (ValueError, KeyError) as e:
        raise FacetrackError(f"corrupt file: {index_file} ({e})") from None
    if tuple(landmarks.tolist()) != LANDMARKS_68:
        raise FacetrackError(f"{index_file}: landmark indices differ from the ICT-FaceKit README's 68 points")

    path = find_obj(folder, "generic_neutral_mesh")
    neutral = read_obj(path, topology=True)
    _check_count(path, len(neutral.vertices))
    polygons = neutral.polygons[:FACE_POLYGONS]
    triangles = triangulate(polygons)
    if triangles.max() >= FACE_VERTICES:
        raise FacetrackError(f"{path}: face polygons reach outside the face area; not ICT-FaceKit Light topology")
    uvs = np.zeros((FACE_VERTICES, 2))
    for poly, puv in zip(polygons, neutral.polygon_uvs[:FACE_POLYGONS], strict=True):
        ok = puv >= 0
        uvs[poly[ok]] = neutral.texcoords[puv[ok]]

    base = neutral.vertices
    mean = base[:FACE_VERTICES]
    id_basis = np.stack([(_read_vertices(folder, f"identity{k:03d}") - base)[:FACE_VERTICES]
                         for k in range(N_IDENTITY)])
    exp_basis = np.stack([(_read_vertices(folder, name) - base)[:FACE_VERTICES] for name in exp_names])

    contour = contour_candidates(mean, landmarks)
    ring_ptr, ring_idx = one_rings(triangles, FACE_VERTICES)
    f32 = np.float32
    return FaceModel(
        mean=mean.astype(f32),
        triangles=triangles,
        uvs=uvs.astype(f32),
        id_basis=id_basis.astype(f32),
        id_sigma=np.ones(N_IDENTITY, f32),
        exp_basis=exp_basis.astype(f32),
        exp_names=np.asarray(exp_names),
        refl_mean=np.tile(np.asarray(SKIN_TONE, f32), (FACE_VERTICES, 1)),
        refl_basis=np.zeros((reflectance_modes, FACE_VERTICES, 3), f32),
        refl_sigma=np.ones(reflectance_modes, f32),
        refl_learned=np.asarray(False),
        landmarks=landmarks,
        contour_ptr=np.concatenate([[0], np.cumsum([len(c) for c in contour])]).astype(np.int32),
        contour_idx=np.concatenate(contour).astype(np.int32),
        skin_mask=skin_mask(mean, triangles, landmarks),
        photo_mask=photometric_mask(triangles, ring_ptr, ring_idx, FACE_VERTICES),
        ring_ptr=ring_ptr,
        ring_idx=ring_idx,
        source=np.asarray(json.dumps({"ict_facekit": str(folder.resolve()), "face_area": [0, FACE_VERTICES - 1],
                                      "units": "cm"})),
    )
