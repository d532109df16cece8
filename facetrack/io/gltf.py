"""A recording as one glTF 2.0 binary (`.glb`): the person's mesh, 53 expression morph targets and an animation.

`facetrack export REC --gltf OUT.glb` writes:
- one mesh: the person's face (ICT topology) at the final level with no expression: identity and geometry
  correctives are the medians over the frames with a face (the tracker holds the identity, so this is the
  person); vertex colours from the reflectance; metres, +Y up, the face looking along +Z (glTF's axes).
- 53 morph targets, ICT's expression shapes by name (`mesh.extras.targetNames`, which Blender reads as shape
  key names); ICT names rather than ARKit's so that every shape is there (README: Streaming and exports).
- one animation, keyframed at the recording's timestamps (seconds from the first frame with a face): the
  morph weights, the head rotation (model to camera frame) and its translation relative to the first frame,
  both in the source camera's frame (facetrack.track.head).
  Frames without a face are left out: the animation interpolates across them.
pygltflib writes and reads the file; `read_frame` evaluates one keyframe (the test and the docs render it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygltflib as gl
import torch

from facetrack.errors import FacetrackError
from facetrack.io.recording import Recording, matrix_to_quaternion, quaternion_to_matrix
from facetrack.model.multilevel import MultiLevelModel, vertex_normals
from facetrack.track.head import recorded_poses

CM_TO_M = 0.01


class _Blob:
    """Buffer views and accessors appended to one binary buffer."""

    def __init__(self, doc: gl.GLTF2) -> None:
        self.doc, self.data = doc, bytearray()

    def add(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        a = np.ascontiguousarray(array)
        component = gl.UNSIGNED_INT if a.dtype == np.uint32 else gl.FLOAT
        raw = a.tobytes()
        self.doc.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw),
                                                  target=target))
        self.data += raw + b"\0" * (-len(raw) % 4)
        rows = a.reshape(len(a), -1)
        acc = gl.Accessor(bufferView=len(self.doc.bufferViews) - 1, componentType=component, count=len(a),
                          type=kind)
        if bounds:
            acc.min, acc.max = rows.min(0).tolist(), rows.max(0).tolist()
        self.doc.accessors.append(acc)
        return len(self.doc.accessors) - 1


def person_params(model: MultiLevelModel, rec: Recording) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) parameter vectors of the frames with a face and the person's neutral vector (medians of
    identity and correctives, no expression, no pose)."""
    x = rec.params(model.layout)
    present = rec.present
    x = x[present]
    if not len(x):
        raise FacetrackError("the recording has no frame with a face: nothing to export")
    sl = model.layout.slices()
    neutral = np.zeros(model.layout.size, np.float32)
    for block in ("alpha_id", "delta_g", "delta_r"):
        neutral[sl[block]] = np.median(x[:, sl[block]], axis=0)
    return x, neutral


def export_gltf(rec: Recording, model: MultiLevelModel, path: Path) -> tuple[int, int]:
    """Write the .glb; returns (keyframes, frames left out for having no face)."""
    x, neutral = person_params(model, rec)
    present = rec.present
    sl = model.layout.slices()
    with torch.no_grad():
        p = model.params(torch.from_numpy(neutral)[None])
        v, refl = model.base(p)
        v = v + model.geo_corrective(p["delta_g"])
        refl = refl + model.refl_corrective(p["delta_r"])
        normals = vertex_normals(v, model.triangles)[0].numpy()
    verts = v[0].numpy() * CM_TO_M
    tris = model.triangles.numpy().astype(np.uint32)
    colors = np.clip(refl[0].numpy(), 0, 1).astype(np.float32)
    n_exp = model.layout.n_exp
    deltas = model.exp_basis.numpy().reshape(n_exp, -1, 3) * CM_TO_M

    doc = gl.GLTF2(asset=gl.Asset(generator="facetrack"), scene=0, scenes=[gl.Scene(nodes=[0])])
    blob = _Blob(doc)
    attrs = gl.Attributes(POSITION=blob.add(verts.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER, True),
                          NORMAL=blob.add(normals.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER),
                          COLOR_0=blob.add(colors, gl.VEC3, gl.ARRAY_BUFFER))
    targets = [gl.Attributes(POSITION=blob.add(d.astype(np.float32), gl.VEC3, gl.ARRAY_BUFFER, True))
               for d in deltas]
    indices = blob.add(tris.reshape(-1), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER, True)
    doc.meshes.append(gl.Mesh(name="face", primitives=[gl.Primitive(attributes=attrs, indices=indices,
                                                                      targets=targets)],
                              weights=[0.0] * n_exp, extras={"targetNames": [str(n) for n in model.exp_names]}))
    doc.materials.append(gl.Material(name="skin", doubleSided=False,
                                     pbrMetallicRoughness=gl.PbrMetallicRoughness(metallicFactor=0.0,
                                                                                  roughnessFactor=0.8)))
    doc.meshes[0].primitives[0].material = 0

    times = (rec.timestamp[present] - rec.timestamp[present][0]).astype(np.float32)
    weights = np.clip(x[:, sl["alpha_exp"]], 0, 1).astype(np.float32)
    R, t = (a[present] for a in recorded_poses(rec, np.eye(3)))
    quats = np.stack([np.roll(matrix_to_quaternion(r), -1) for r in R]).astype(np.float32)  # (x, y, z, w)
    trans = ((t - t[0]) * CM_TO_M).astype(np.float32)
    t_in = blob.add(times, gl.SCALAR, bounds=True)
    samplers = [gl.AnimationSampler(input=t_in, output=blob.add(values, kind), interpolation="LINEAR")
                for values, kind in ((weights.reshape(-1), gl.SCALAR), (quats, gl.VEC4), (trans, gl.VEC3))]
    channels = [gl.AnimationChannel(sampler=k, target=gl.AnimationChannelTarget(node=0, path=path_))
                for k, path_ in enumerate(("weights", "rotation", "translation"))]
    doc.animations.append(gl.Animation(name=rec.header.get("source", "facetrack") or "facetrack",
                                       samplers=samplers, channels=channels))
    doc.nodes.append(gl.Node(name="head", mesh=0, rotation=quats[0].tolist(), translation=[0.0, 0.0, 0.0]))
    doc.buffers.append(gl.Buffer(byteLength=len(blob.data)))
    doc.set_binary_blob(bytes(blob.data))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        doc.save_binary(str(path))
    except OSError as e:
        raise FacetrackError(f"cannot write {path}: {e.strerror or e}") from None
    return len(times), int((~present).sum())


@dataclass
class GltfFrame:
    """One keyframe of an exported file, evaluated: what a glTF viewer shows at that time."""

    time: float
    vertices: np.ndarray  # (V, 3) metres, node frame (before rotation)
    rotation: np.ndarray  # (3, 3)
    translation: np.ndarray  # (3,) metres
    triangles: np.ndarray  # (F, 3)
    colors: np.ndarray  # (V, 3)
    target_names: list[str]
    duration: float


def read_frame(path: Path, k: int) -> GltfFrame:
    """Load a .glb written by `export_gltf` with pygltflib and evaluate keyframe k (morphs, rotation)."""
    doc = gl.GLTF2().load(str(path))
    blob = doc.binary_blob()

    def array(i: int) -> np.ndarray:
        acc = doc.accessors[i]
        view = doc.bufferViews[acc.bufferView]
        dtype = np.uint32 if acc.componentType == gl.UNSIGNED_INT else np.float32
        width = {gl.SCALAR: 1, gl.VEC3: 3, gl.VEC4: 4}[acc.type]
        a = np.frombuffer(blob, dtype, acc.count * width, view.byteOffset + (acc.byteOffset or 0))
        return a.reshape(acc.count, width) if width > 1 else a

    prim = doc.meshes[0].primitives[0]
    names = doc.meshes[0].extras["targetNames"]
    anim = doc.animations[0]
    out = {ch.target.path: array(anim.samplers[ch.sampler].output) for ch in anim.channels}
    times = array(anim.samplers[0].input)
    w = out["weights"].reshape(len(times), len(names))[k]
    v = array(prim.attributes.POSITION).astype(np.float64).copy()
    for j, t in enumerate(prim.targets):
        v += w[j] * array(t["POSITION"] if isinstance(t, dict) else t.POSITION)  # read back, targets are dicts
    qx, qy, qz, qw = out["rotation"][k]
    return GltfFrame(float(times[k]), v, quaternion_to_matrix(np.array([qw, qx, qy, qz])),
                     out["translation"][k].astype(np.float64), array(prim.indices).reshape(-1, 3),
                     array(prim.attributes.COLOR_0), list(names), float(times.max()))
