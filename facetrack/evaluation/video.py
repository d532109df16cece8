"""`facetrack eval video FILE...`: tracking success and landmark jitter.

Each video runs through the tracker frame by frame, as the app runs it (the previous frame's
reconstruction gives the face box; detection only when the face is lost). Figures per video:
- success rate: frames with a reconstruction / frames;
- jitter: mean frame-to-frame motion of the 68 projected model landmarks on still segments, divided by the
  face size (sqrt(w * h) of the landmark box), next to the same figure for the raw dlib landmarks
  (one plain predictor pass in the same box) and for the mirror-averaged dlib landmarks the tracker is fed.
  Still segments: frame pairs where a centred moving average of the raw dlib landmarks over
  `SMOOTH_FRAMES` moves less than `still` face sizes per frame, so real head motion is left out and what
  remains is noise.
Pooled over the videos: expression responsiveness and lag against dlib's measures (MediaPipe's blendshape scores
as a peer), the brows against dlib's brow heights with the head's pitch held (brows), the shapes that ever
move (live_shapes), each level's photometric error. `degrade` tracks worse
frames (facetrack.evaluation.degrade) against the clean frames' reference.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from facetrack.errors import FacetrackError
from facetrack.evaluation.degrade import Degradation
from facetrack.evaluation.landmarks import mean_face_landmarks, pnp_pose_deg
from facetrack.evaluation.metrics import jitter
from facetrack.evaluation.report import skipped, stats
from facetrack.io.arkit import ARKIT_NAMES, NOT_MODELLED, to_arkit
from facetrack.io.sources import open_source
from facetrack.render.reconstruction import LEVELS
from facetrack.track.pipeline import RECORDING_NEEDS
from facetrack.track.tracker import Tracker
from facetrack.vision.crop import face_size
from facetrack.vision.landmarks import DlibLandmarks

SMOOTH_FRAMES = 9
STILL = 0.002  # face sizes per frame (0.46 px at a 230 px face)


def still_pairs(points: np.ndarray, still: float = STILL, window: int = SMOOTH_FRAMES) -> np.ndarray:
    """(T,) bool: pairs[t] is True when the frame pair (t-1, t) lies in a still segment of (T, N, 2) points."""
    T = len(points)
    ok = np.isfinite(points).all(axis=(1, 2))
    smooth = np.full_like(points, np.nan)
    half = window // 2
    for t in range(half, T - half):
        win = points[t - half : t + half + 1]
        if ok[t - half : t + half + 1].all():
            smooth[t] = win.mean(0)
    motion = np.full(T, np.inf)
    motion[1:] = np.linalg.norm(np.diff(smooth, axis=0), axis=-1).mean(-1) / face_size(points[1:])
    return np.nan_to_num(motion, nan=np.inf) < still


RESPONSIVE = ("jawOpen", "eyeBlink_L", "eyeBlink_R")
MEDIAPIPE_NAMES = {"jawOpen": "jawOpen", "eyeBlink_L": "eyeBlinkLeft", "eyeBlink_R": "eyeBlinkRight"}


def mouth_opening(lm: np.ndarray) -> np.ndarray:
    """Inner-lip gap (68-point 62-66) over the distance of the eye centres, (..., 68, 2) -> (...)."""
    return np.linalg.norm(lm[..., 62, :] - lm[..., 66, :], axis=-1) / _eye_distance(lm)


def eye_closure(lm: np.ndarray, side: str) -> np.ndarray:
    """Minus the eye aspect ratio (Soukupova and Cech 2016) of the subject's left (L: points 42-47) or
    right (R: 36-41) eye: larger when the eye closes."""
    e = lm[..., 42:48, :] if side == "L" else lm[..., 36:42, :]
    vertical = (np.linalg.norm(e[..., 1, :] - e[..., 5, :], axis=-1)
                + np.linalg.norm(e[..., 2, :] - e[..., 4, :], axis=-1))
    return -vertical / (2 * np.linalg.norm(e[..., 0, :] - e[..., 3, :], axis=-1))


def measures(lm: np.ndarray) -> dict[str, np.ndarray]:
    """The measure each RESPONSIVE coefficient is compared with, from (..., 68, 2) landmarks."""
    return {"jawOpen": mouth_opening(lm), "eyeBlink_L": eye_closure(lm, "L"), "eyeBlink_R": eye_closure(lm, "R")}


# Brow raises (ARKit names) and the 68-point brow points whose height each is compared with: the inner ends of
# both brows, the outer thirds of each (the subject's left brow is 22-26).
BROWS = {"browInnerUp": (20, 21, 22, 23), "browOuterUpLeft": (24, 25, 26), "browOuterUpRight": (17, 18, 19)}


def brow_height(lm: np.ndarray, points: tuple[int, ...]) -> np.ndarray:
    """Mean height of the given 68-point brow points over the line through the eyes' midpoints between their
    corners, over the distance of those midpoints, (T, 68, 2) -> (T,): larger when the brows rise. Corners, not
    the whole eye contours: the lids move the contours' centres with every blink, gaze down and widened eye."""
    right, left = lm[..., [36, 39], :].mean(-2), lm[..., [42, 45], :].mean(-2)
    d = left - right
    w = np.linalg.norm(d, axis=-1)
    up = np.stack([d[..., 1], -d[..., 0]], -1) / w[..., None]  # image y points down: this normal points up
    mid = (left + right) / 2
    return np.mean([((lm[..., k, :] - mid) * up).sum(-1) for k in points], 0) / w


def within_clip_r(xs: list[np.ndarray], ys: list[np.ndarray], controls: list[np.ndarray] | None = None
                  ) -> float | None:
    """Pearson r of clip series pairs after removing, per clip, what a quadratic in the control explains (each
    clip's own mean when there is none; frames where anything is NaN left out): how well x follows y's
    changes, blind to a constant that differs between clips and to what the control drives in both."""
    a, b = [], []
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        c = controls[k] if controls is not None else np.zeros_like(y)
        ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(c)
        if ok.sum() < 4:
            continue
        X = np.stack([np.ones(ok.sum()), c[ok], c[ok] ** 2], 1)
        a.append(x[ok] - X @ np.linalg.lstsq(X, x[ok], rcond=None)[0])
        b.append(y[ok] - X @ np.linalg.lstsq(X, y[ok], rcond=None)[0])
    return pearson(np.concatenate(a), np.concatenate(b)) if a else None


def brow_responsiveness(values: dict[str, list[np.ndarray]], dlib_raw: list[np.ndarray], pitch: list[np.ndarray]
                        ) -> dict:
    """Per label of per-clip (T, 52) ARKit values (ours through the map, MediaPipe's scores): the within-clip r
    of each BROWS shape with its brow height on raw dlib landmarks, with the head's pitch (per-clip (T,),
    solvePnP on the same dlib points) held: a brow's height in the picture changes as much when the head
    tilts as when the brow rises (the brows stand out in front of the eye corners; on the shared clips the
    two correlate at r -0.47 within clips). Within clips because how high a person's brows rest is theirs."""
    refs = {name: [brow_height(lm, pts) for lm in dlib_raw] for name, pts in BROWS.items()}
    return {label: {f"r_{name}": within_clip_r([c[:, ARKIT_NAMES.index(name)] for c in clips], refs[name], pitch)
                    for name in BROWS} for label, clips in values.items()}


def _eye_distance(lm: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lm[..., 36:42, :].mean(-2) - lm[..., 42:48, :].mean(-2), axis=-1)


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) < 1e-9 or np.std(b[ok]) < 1e-9:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


MAX_LAG = 6


def lag_frames(ours: np.ndarray, reference: np.ndarray, max_lag: int = MAX_LAG) -> int | None:
    """The delay (frames) of our landmark motion behind the reference's: the shift of our frame-to-frame
    velocity of the mean landmark that correlates best with the reference's (0 = no lag)."""
    a = np.diff(np.nanmean(ours, axis=1), axis=0).ravel()  # (T-1)*2 velocities, x and y interleaved
    b = np.diff(np.nanmean(reference, axis=1), axis=0).ravel()
    best, best_r = None, -np.inf
    for lag in range(0, max_lag + 1):
        k = 2 * lag
        r = pearson(a[k:], b[: len(b) - k] if k else b)
        if r is not None and r > best_r:
            best, best_r = lag, r
    return best


def change_lag(ours: list[np.ndarray], reference: list[np.ndarray], max_lag: int = MAX_LAG) -> float | None:
    """The delay (frames, to a tenth) of a coefficient's changes behind a reference measure's, over clips
    (one 1-D series per clip each): the shift of our frame-to-frame change that correlates best with the
    reference's, refined between whole frames by a parabola through the three best. The landmark lag above
    sees head motion; this one sees what the expression filter adds to a blink or a mouth opening."""
    d_ours = [np.diff(a) for a in ours]
    d_ref = [np.diff(b) for b in reference]

    def r_at(lag: int) -> float:
        a = np.concatenate([x[max(lag, 0): len(x) + min(lag, 0)] for x in d_ours])
        b = np.concatenate([y[max(-lag, 0): len(y) - max(lag, 0)] for y in d_ref])
        r = pearson(a, b)
        return -np.inf if r is None else r

    lags = np.arange(-max_lag, max_lag + 1)
    rs = np.array([r_at(int(k)) for k in lags])
    if not np.isfinite(rs).any():
        return None
    k = int(np.argmax(rs))
    offset = 0.0
    if 0 < k < len(rs) - 1 and np.isfinite(rs[k - 1]) and np.isfinite(rs[k + 1]):
        curve = rs[k - 1] - 2 * rs[k] + rs[k + 1]
        offset = 0.5 * (rs[k - 1] - rs[k + 1]) / curve if curve < 0 else 0.0
    return round(float(lags[k] + offset), 1) + 0.0  # + 0.0: no -0.0 in reports


def track_video(tracker: Tracker, path: Path, max_frames: int | None = None,
                reference: DlibLandmarks | None = None, degrade: str | None = None) -> dict[str, np.ndarray]:
    """Per frame: model landmarks, raw and fed landmarks (T, 68, 2), our expression weights and MediaPipe's
    blendshape scores for the RESPONSIVE shapes (T, 3), each level's photometric error as the app records it
    (T, 2: base, final), every shape as ARKit values (T, 52: ours through the map, MediaPipe's own scores)
    and the head's pitch from the raw dlib points (T,: solvePnP with the mean face, degrees); NaN where lost.
    `degrade`: the tracker sees frames made worse (evaluation.degrade), the dlib reference the clean ones; all
    landmarks are given in the clean frame's pixels."""
    tracker.reset()
    reference = reference or DlibLandmarks()
    worse = Degradation(degrade) if degrade else None
    scale = worse.scale if worse else 1.0
    ours, raw, fed, exp, mp_scores, photo, ark, mp_ark = [], [], [], [], [], [], [], []
    nan = np.full((68, 2), np.nan)
    names = list(tracker.model.exp_names)
    mean_lm = mean_face_landmarks(tracker.model)
    size = None
    for frame in open_source(str(path)):
        rgb = frame.rgb
        size = rgb.shape[:2]
        r = tracker(worse(rgb) if worse else rgb, needs=RECORDING_NEEDS, timestamp=frame.timestamp)
        if r is None:
            photo.append([np.nan, np.nan])
            ours.append(nan)
            raw.append(nan)
            fed.append(nan)
            exp.append(np.full(len(RESPONSIVE), np.nan))
            mp_scores.append(np.full(len(RESPONSIVE), np.nan))
            ark.append(np.full(len(names), np.nan))
            mp_ark.append(np.full(len(ARKIT_NAMES), np.nan))
        else:
            ours.append(r.landmarks_image / scale)
            fed.append(r.face.image_landmarks / scale)
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            raw.append(reference.raw(gray, tuple(round(v / scale) for v in r.face.source_box)))
            e = r.recon.expressions
            exp.append([e.get(n, np.nan) for n in RESPONSIVE])
            shapes = r.dense.blendshapes if r.dense is not None else {}
            mp_scores.append([shapes.get(MEDIAPIPE_NAMES[n], np.nan) for n in RESPONSIVE])
            ark.append([e[n] for n in names])
            mp_ark.append([shapes.get(n, np.nan) for n in ARKIT_NAMES])
            photo.append([r.photometric.get(lv, np.nan) for lv in LEVELS])
        if max_frames and len(ours) >= max_frames:
            break
    pitch = [pnp_pose_deg(mean_lm, lm - 0.5, size)[0] if np.isfinite(lm).all() else np.nan for lm in raw]
    return {k: np.asarray(v, np.float64) for k, v in (("ours", ours), ("dlib_raw", raw), ("dlib_fed", fed),
                                                       ("expressions", exp), ("mediapipe", mp_scores),
                                                       ("photometric", photo), ("arkit", to_arkit(names, ark)),
                                                       ("mediapipe_arkit", mp_ark), ("dlib_pitch", pitch))}


def responsiveness(tr: dict[str, np.ndarray]) -> dict:
    """Pearson r of jawOpen with the mouth opening and of eyeBlink_L/R with eye closure, all measured by raw
    dlib landmarks on the same frames; for our coefficients, MediaPipe's blendshape scores (a peer) and our
    mesh's own lip gap and eyelid closure (68 model landmarks); plus each coefficient's SD."""
    ref, mesh = measures(tr["dlib_raw"]), measures(tr["ours"])
    out = {}
    for label, series in (("ours", tr["expressions"]), ("mediapipe_blendshapes", tr["mediapipe"])):
        row = {}
        for k, name in enumerate(RESPONSIVE):
            row[f"r_{name}"] = pearson(series[:, k], ref[name])
            v = series[:, k][np.isfinite(series[:, k])]
            row[f"sd_{name}"] = float(v.std()) if len(v) else None
        out[label] = row
    out["ours_mesh"] = {f"r_{name}": pearson(mesh[name], ref[name]) for name in RESPONSIVE}
    return out


def expression_lags(coefficients: dict[str, list[np.ndarray]], dlib_raw: list[np.ndarray]) -> dict:
    """change_lag of each RESPONSIVE coefficient behind its reference measure on raw dlib landmarks, pooled
    over clips: per label (ours, MediaPipe's scores) a list of each clip's (T, 3) series; dlib_raw the clips'
    (T, 68, 2) points."""
    refs = [measures(lm) for lm in dlib_raw]
    return {label: {name: change_lag([c[:, k] for c in clips], [r[name] for r in refs])
                    for k, name in enumerate(RESPONSIVE)}
            for label, clips in coefficients.items()}


LIVE = 0.05  # a shape whose value never passes this on any frame is not live (MediaPipe's users' complaint)


def live_shapes(coefficients: dict[str, np.ndarray]) -> dict:
    """Per label, of (T, 52) values in ARKIT_NAMES order (ours through the ARKit map, MediaPipe's own scores): how
    many of the 51 modelled ARKit shapes pass LIVE on some frame, and which never do. An avatar driven by a
    shape that never moves cannot show it."""
    modelled = [k for k, n in enumerate(ARKIT_NAMES) if n not in NOT_MODELLED]
    out = {}
    for label, values in coefficients.items():
        if not np.isfinite(values).any():  # no such scores (MediaPipe's without its front end)
            out[label] = None
            continue
        peak = np.where(np.isfinite(values), values, -np.inf).max(axis=0)
        never = [ARKIT_NAMES[k] for k in modelled if not peak[k] > LIVE]
        out[label] = {"live": len(modelled) - len(never), "of": len(modelled), "never": never}
    return out


def photometric_levels(photo: np.ndarray) -> dict:
    """Mean per-vertex photometric error of each level over the frames with a face, and final / base: the
    recorded figure (RGB in [0, 1], the face area's visible vertices), with the appearance fitted over time."""
    ok = np.isfinite(photo).all(1)
    if not ok.any():
        return {}
    base, final = (float(v) for v in photo[ok].mean(0))
    return {"base": base, "final": final, "final_to_base": final / base}


def eval_video(tracker: Tracker, files: list[Path], max_frames: int | None = None, still: float = STILL,
               degrade: str | None = None) -> dict:
    if tracker.dense is not None and not tracker.dense.blendshapes:
        raise ValueError("eval video reports MediaPipe's blendshape scores as a peer: make the tracker with "
                         "mediapipe_scores=True")
    per_video, missing = {}, Counter()
    reference = DlibLandmarks()
    series: dict[str, list[np.ndarray]] = {k: [] for k in ("ours", "dlib_raw", "expressions", "mediapipe",
                                                           "photometric", "arkit", "mediapipe_arkit",
                                                           "dlib_pitch")}
    total = found = 0
    pooled = {"ours": [], "dlib_raw": [], "dlib_fed": []}
    still_n = 0
    for path in files:
        try:
            tr = track_video(tracker, path, max_frames, reference, degrade)
        except FacetrackError:
            missing["unreadable video"] += 1
            continue
        T = len(tr["ours"])
        ok = np.isfinite(tr["ours"]).all(axis=(1, 2))
        total += T
        found += int(ok.sum())
        if not ok.any():
            missing["video without faces"] += 1
            per_video[path.name] = {"frames": T, "success_rate": 0.0}
            continue
        for k in series:
            series[k].append(tr[k])
        pairs = still_pairs(tr["dlib_raw"], still)
        scale = face_size(tr["dlib_raw"])
        fig = {k: jitter(tr[k], pairs, scale) for k in pooled}
        n_pairs = int(pairs[1:].sum())
        if n_pairs:
            for k in pooled:
                pooled[k].append((fig[k], n_pairs))
        still_n += n_pairs
        per_video[path.name] = {"frames": T, "success_rate": float(ok.mean()), "still_pairs": n_pairs,
                                "jitter": fig, "jitter_ratio_ours_to_raw_dlib": fig["ours"] / fig["dlib_raw"]
                                if n_pairs else None,
                                "face_size_px": stats(scale).get("median"), "responsiveness": responsiveness(tr),
                                "photometric_error": photometric_levels(tr["photometric"]),
                                "lag_frames": lag_frames(tr["ours"], tr["dlib_raw"])}

    def pooled_mean(k: str) -> float | None:
        if not pooled[k]:
            return None
        v, w = np.asarray(pooled[k]).T
        return float((v * w).sum() / w.sum())

    jit = {k: pooled_mean(k) for k in pooled}
    return {"videos": len(files), "frames": total, "success_rate": found / max(total, 1),
            "still_pairs": still_n, "still_threshold": still,
            "jitter": jit,
            "jitter_ratio_ours_to_raw_dlib": jit["ours"] / jit["dlib_raw"] if jit["ours"] and jit["dlib_raw"] else None,
            "responsiveness": responsiveness({k: np.concatenate(v) for k, v in series.items()}) if series["ours"]
            else None,
            "lag_frames_median": float(np.median(lags)) if (lags := [v["lag_frames"] for v in per_video.values()
                                                                      if v.get("lag_frames") is not None]) else None,
            "expression_lag_frames": expression_lags({"ours": series["expressions"],
                                                      "mediapipe_blendshapes": series["mediapipe"]},
                                                     series["dlib_raw"]) if series["ours"] else None,
            "photometric_error": photometric_levels(np.concatenate(series["photometric"])) if series["ours"] else None,
            "brows": brow_responsiveness({"ours": series["arkit"], "mediapipe_blendshapes": series["mediapipe_arkit"]},
                                         series["dlib_raw"], series["dlib_pitch"]) if series["ours"] else None,
            "live_shapes": live_shapes({"ours": np.concatenate(series["arkit"]),
                                        "mediapipe_blendshapes": np.concatenate(series["mediapipe_arkit"])})
            if series["ours"] else None,
            "front_end": tracker.front_end, "per_video": per_video, "skipped": skipped(missing)}
