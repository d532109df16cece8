"""`facetrack eval landmarks DIR`: 68-point alignment and head pose on AFLW2000-3D style data.

Each image comes with a `.mat` of the same stem holding `pt3d_68` (3 x 68; x, y in image pixels) and
`Pose_Para` (pitch, yaw, roll in radians, then translation and scale). The usual protocol: NME of the 68
landmarks normalised by sqrt(w * h) of the ground-truth landmarks' bounding box, in yaw bins
[0, 30), [30, 60), [60, 90] degrees, and the mean absolute yaw, pitch and roll error in degrees.

The model's landmarks are its fixed 68 vertices projected into the image (3D landmarks, as pt3d_68 are),
in pixel-index coordinates like the annotations. Angles are compared in the dataset's own parametrization,
as the usual protocol does: AFLW2000's rotation (3DDFA's R = Rx Ry Rz, each factor turning the other way) is
the transpose of ours for the same three angles, so each predicted rotation R is read as the angles of R^T
in our order. (Negating the angles instead agrees only for small poses: it put the sample's yaw -66 face 51
degrees from the rotation of its own 3D landmarks.) Euler angles trade pitch against roll near profile, so
the report adds the geodesic angle between predicted and annotated rotations, free of any parametrization.
For context the report also gives the input of our pipeline: the raw landmarks it was fed (dlib's, or
MediaPipe's 68-point subset), the head pose that OpenCV's solvePnP finds from them with the model's mean
face (what a landmark-only tracker does), and with MediaPipe the pose of its own transformation matrix.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import torch

from facetrack.errors import FacetrackError
from facetrack.evaluation.metrics import angle_errors_deg, nme_bbox, rotation_error_deg
from facetrack.evaluation.report import skipped, stats
from facetrack.io.sources import IMAGE_EXTS
from facetrack.model.multilevel import MultiLevelModel
from facetrack.render.camera import euler_to_matrix, matrix_to_euler
from facetrack.render.reconstruction import Needs
from facetrack.track.photos import reconstructions
from facetrack.track.tracker import Tracker
from facetrack.vision.crop import face_size

YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
FLIP_YZ = np.diag([1.0, -1.0, -1.0])  # OpenCV camera frame (y down, z forward) <-> ours (y up, z back)


def read_annotation(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(68, 2) landmarks and Pose_Para's (pitch, yaw, roll) in degrees, the dataset's convention (None
    without Pose_Para; see dataset_angles). Raises ValueError with the reason when the file cannot serve."""
    import scipy.io

    try:
        m = scipy.io.loadmat(str(path))
    except Exception as e:  # noqa: BLE001 - scipy raises several kinds for a broken file
        raise ValueError("unreadable .mat") from e
    if "pt3d_68" not in m or np.asarray(m["pt3d_68"]).shape[-1] != 68:
        raise ValueError(".mat without pt3d_68")
    lm = np.asarray(m["pt3d_68"], np.float64)[:2].T
    pose = None
    if "Pose_Para" in m and np.asarray(m["Pose_Para"]).size >= 3:
        pose = np.degrees(np.asarray(m["Pose_Para"], np.float64).ravel()[:3])
    return lm, pose


def dataset_angles(ours_deg: np.ndarray) -> np.ndarray:
    """Our (pitch, yaw, roll) in degrees as AFLW2000's Pose_Para would write the same rotation."""
    R = euler_to_matrix(torch.from_numpy(np.radians(np.asarray(ours_deg, np.float64))))
    return np.degrees(matrix_to_euler(R.T).numpy())


def geodesic_deg(a_deg: np.ndarray, b_deg: np.ndarray) -> float:
    """The angle of the rotation between two poses given as our Euler angles (degrees)."""
    R = euler_to_matrix(torch.from_numpy(np.radians(np.stack([a_deg, b_deg]).astype(np.float64)))).numpy()
    return rotation_error_deg(R[0], R[1])


def mean_face_landmarks(model: MultiLevelModel) -> np.ndarray:
    """(68, 3) float64: the mean face's landmark vertices (cm), the shape pnp_pose_deg poses."""
    return model.mean[model.landmarks].double().numpy()


def pnp_pose_deg(mean_landmarks_cm: np.ndarray, image_landmarks: np.ndarray, image_size: tuple[int, int]
                 ) -> np.ndarray:
    """(pitch, yaw, roll) in degrees of the mean face posed onto 2D landmarks by solvePnP (reference)."""
    h, w = image_size
    f = 2.0 * max(h, w)  # a moderate telephoto: close to the weak perspective of photo annotations
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    obj = mean_landmarks_cm @ FLIP_YZ.T
    pts = image_landmarks.astype(np.float64)
    _, rv, tv = cv2.solvePnP(obj, pts, K, None, flags=cv2.SOLVEPNP_EPNP)
    _, rv, tv = cv2.solvePnP(obj, pts, K, None, rv, tv, True, flags=cv2.SOLVEPNP_ITERATIVE)
    R = FLIP_YZ @ cv2.Rodrigues(rv)[0] @ FLIP_YZ
    return np.degrees(matrix_to_euler(torch.from_numpy(R)).numpy())


MIN_CONVENTION_IMAGES = 4  # the dataset's convention is learned from the other images: at least this many


def cross_validated_nme(points: list[np.ndarray], gt: list[np.ndarray]) -> list[float] | None:
    """Per image: the NME of the candidate points (K, 2) that best match the dataset's 68 points, each chosen
    as the candidate with the least mean normalised distance to that point over the other images. None with
    fewer than MIN_CONVENTION_IMAGES + 1 images."""
    n = len(points)
    if n <= MIN_CONVENTION_IMAGES:
        return None

    def errors(i: int) -> np.ndarray:  # (68, K) distances in face sizes
        d = points[i][None, :, :] - gt[i][:, None, :].astype(np.float32)
        return np.sqrt((d * d).sum(-1)) / np.float32(face_size(gt[i]))

    total = sum(errors(i) for i in range(n))
    out = []
    for i in range(n):
        e = errors(i)
        chosen = np.argmin(total - e, axis=1)
        out.append(float(e[np.arange(len(e)), chosen].mean()))
    return out


def _image_for(mat: Path) -> Path | None:
    for ext in sorted(IMAGE_EXTS):
        for cand in (mat.with_suffix(ext), mat.with_suffix(ext.upper())):
            if cand.is_file():
                return cand
    return None


def eval_landmarks(tracker: Tracker, folder: Path, levels: tuple[str, ...] = ("base", "final"),
                   limit: int | None = None) -> dict:
    if not folder.is_dir():
        raise FacetrackError(f"annotation folder not found: {folder}")
    mats = sorted(folder.glob("*.mat"))[:limit] if limit else sorted(folder.glob("*.mat"))
    model = tracker.model
    mean_lm = mean_face_landmarks(model)
    nme = {lv: [] for lv in levels}
    nme_dlib, yaws, pose_err, pnp_err, mp_err = [], [], [], [], []
    vertices = {lv: [] for lv in levels}  # every vertex in image pixel indices, for the dataset's convention
    raw_points, truth = [], []  # the front end's raw landmarks (MediaPipe's 478) and the annotations
    missing = Counter()
    annotated: dict[Path, tuple[np.ndarray, np.ndarray | None]] = {}
    for mat in mats:
        image = _image_for(mat)
        if image is None:
            missing["no image beside the .mat"] += 1
            continue
        try:
            annotated[image] = read_annotation(mat)
        except ValueError as e:
            missing[str(e)] += 1
    landmark_idx = model.landmarks.numpy()
    for image, img, r in reconstructions(tracker, annotated, missing, Needs(frozenset(levels))):
        gt, gt_pose = annotated[image]
        for lv in levels:  # every vertex in image pixel indices (pixel centres are at k + 0.5)
            uv = r.box.to_image(r.recon.levels[lv].uv.astype(np.float64)) - 0.5
            nme[lv].append(nme_bbox(uv[landmark_idx], gt))
            vertices[lv].append(uv.astype(np.float32))
        truth.append(gt)
        if r.dense is not None:
            raw_points.append((r.dense.points - 0.5).astype(np.float32))
        nme_dlib.append(nme_bbox(r.face.image_landmarks - 0.5, gt))
        if gt_pose is None:
            yaws.append(np.nan)
            continue
        yaws.append(abs(gt_pose[1]))
        gt_ours = dataset_angles(gt_pose)  # the transpose is its own inverse: also Pose_Para -> ours
        pred = r.recon.rotation_deg.astype(np.float64)
        pose_err.append([*angle_errors_deg(dataset_angles(pred), gt_pose), geodesic_deg(pred, gt_ours)])
        pnp = pnp_pose_deg(mean_lm, r.face.image_landmarks - 0.5, img.shape[:2])
        pnp_err.append([*angle_errors_deg(dataset_angles(pnp), gt_pose), geodesic_deg(pnp, gt_ours)])
        if r.dense is not None and r.dense.matrix is not None:  # MediaPipe's own head pose: same axes as ours
            mp_pose = np.degrees(matrix_to_euler(torch.from_numpy(r.dense.matrix[:3, :3].astype(np.float64))).numpy())
            mp_err.append([*angle_errors_deg(dataset_angles(mp_pose), gt_pose), geodesic_deg(mp_pose, gt_ours)])
    yaws_a = np.asarray(yaws)
    bins = {f"yaw_{int(lo)}_{int(hi)}": (yaws_a >= lo) & (yaws_a < hi + (hi == 90)) for lo, hi in YAW_BINS}

    def binned(values: list[float] | None) -> dict | None:
        if values is None:
            return None
        v = np.asarray(values)
        return {**{name: stats(v[sel]).get("mean") for name, sel in bins.items()}, "all": stats(v).get("mean")}

    def mae(errors: list[np.ndarray]) -> dict:
        e = np.asarray(errors).reshape(-1, 4)
        return {**{k: stats(e[:, j]).get("mean") for j, k in enumerate(("pitch", "yaw", "roll", "geodesic"))},
                "mean": float(e[:, :3].mean()) if len(e) else None}

    return {"annotations": len(mats), "found": len(nme_dlib),
            "faces_per_yaw_bin": {name: int(sel.sum()) for name, sel in bins.items()},
            "nme": {lv: binned(nme[lv]) for lv in levels},
            "nme_dataset_convention": {lv: binned(cross_validated_nme(vertices[lv], truth)) for lv in levels},
            "pose_mae_deg": mae(pose_err),
            "reference_dlib_nme": binned(nme_dlib),
            "reference_mediapipe_dataset_convention_nme":
                binned(cross_validated_nme(raw_points, truth)) if len(raw_points) == len(truth) else None,
            "reference_dlib_pnp_pose_mae_deg": mae(pnp_err),
            "reference_mediapipe_matrix_pose_mae_deg": mae(mp_err) if mp_err else None,
            "front_end": tracker.front_end,
            "skipped": skipped(missing)}
