"""Per-frame fitting of head pose and the 53 expressions to MediaPipe's dense landmarks (Gauss-Newton).

The encoder gives a fast first guess; this fit makes the coefficient stream follow the face. Unknowns: a
rotation increment (3), translation (3) and the expression weights (53, kept in [0, 1]). Terms, in crop
pixels: the 2D reprojection of the 468 landmarks at their surface points (facetrack.model.correspondence),
with eyelid and inner-lip points weighted up so blinks and mouth shapes are observable and the face-oval
points (which sit on the silhouette, not on fixed skin) weighted down; their depth relative to the face's
mean depth (evidence for the rotation only: as evidence for expressions it made them worse); pulls towards the
previous frame (smoothness) and the encoder (a weak prior on the expressions; on the pitch, which landmarks
under-read for a head looking up or down, a firm one); a per-shape L2 on the expressions (sparsity: no
shape without evidence; shapes that imitate a bigger one or that the landmarks barely see pay more). It
runs coarse to fine: the primary shapes (jawOpen, eyeBlink) first, with the openings of lips and lids as a
term of their own, then all, the primaries held; in a stream the brows there also read each brow point's
offset from the nearer corner of its eye.
All Jacobians are analytic, on precomputed landmark rows of the bases, written into one transposed system
(DenseFitter._data_terms) in single precision. Each stage linearizes once: its later iterations keep that
Jacobian and its J^T J and take only fresh residuals (chord Gauss-Newton; see Linearization): about 1.3 ms a
frame on one core.

Identity is not re-guessed every frame. In a stream, the first frames calibrate the person from a separate solve
with expressions held near zero (jawOpen and the blinks stay free: talking and blinking are not identity):
normal equations for the identity weights, and each landmark's resting-face offset from its model point
(median), so a neutral face reads near-zero expressions. The eyelid margins are eyeBlink's: no resting offset,
and the eye contours have no weight in the identity evidence (identity absorbing each person's resting eye
opening hid blinks across people; the contours' corners and ends move with the lids, so the eyes' state in the
calibration frames became the eye shape); instead the identity holds every person's lid openings at one share of
the eye's width (FitConfig.lid_opening), so eyeBlink reads how closed an eye is the same way for every person,
face size and start of a stream (an eye as open as the mean face's rests near eyeBlink 0.2, the price of a share
above the mean: few eyes sit against the bound at 0). The encoder's geometry correctives do not move the lid
margins or the inner lips in the fit, so eyeBlink and jawOpen read the whole opening the landmarks show (the
mesh's final level still adds them). The two lips of an inner-lip pair share one resting offset:
the lips rest closed, and a calibration during speech must not keep part of the mouth opening as the resting
face. Every 5th frame afterwards adds identity evidence too (at the free fit, as much as a calibration frame, so
what a calibration during speech kept fades); the prior closes the solve. The identity the stream hands on
(mesh, recordings) is the same evidence under a firmer prior (FitConfig.shape_id_prior): the fit's looser one
also takes up the landmark detector's offsets for this person, which reads expressions better but makes a worse
shape. A still photo has no calibration: its identity comes from that frame alone, solved in turn with pose and
expressions, under firmer priors on both (FitConfig.photo_l2, photo_id_prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.linalg.blas import ssyrk
from scipy.linalg.lapack import dposv as posv

from facetrack.model.correspondence import (
    BROWS,
    CHIN,
    EYE_CONTOURS,
    EYE_CORNERS,
    EYELIDS,
    FACE_OVAL,
    INNER_LIPS,
    LIP_CORNERS,
    Correspondence,
)
from facetrack.model.multilevel import LinearCorrective, MultiLevelModel
from facetrack.render.camera import Camera

SECONDARY_SHAPES = {"mouthLowerDown_L": 4.0, "mouthLowerDown_R": 4.0, "mouthUpperUp_L": 4.0, "mouthUpperUp_R": 4.0,
                    "mouthStretch_L": 4.0, "mouthStretch_R": 4.0, "mouthClose": 4.0, "mouthShrugLower": 4.0,
                    "mouthShrugUpper": 4.0, "jawOpen": 0.25,
                    "eyeBlink_L": 0.25, "eyeBlink_R": 0.25}


@dataclass
class FitConfig:
    iterations: int = 2
    w_eyelid: float = 2.0  # per-point weights of the 2D term (others 1)
    w_inner_lip: float = 4.0
    w_oval: float = 0.25
    w_chin: float = 1.0  # the chin carries jawOpen
    w_depth: float = 0.05  # relative depth, per point, pixels^2 like the 2D term
    w_previous: float = 30.0  # expressions towards the previous frame (per unit weight, squared)
    w_encoder: float = 3.0  # expressions towards the encoder's guess
    w_l2: float = 100.0  # expressions towards zero (sparsity; the main defence against cross-talk between shapes)
    w_pose_previous: float = 2e3  # rotation increment (rad) and translation (cm, x0.01) towards the previous frame
    calibration_frames: int = 40  # frames that set the identity at the start
    calibration_l2: float = 1000.0  # expression pull to zero while calibrating ...
    calibration_l2_primary: float = 10.0  # ... except jawOpen and the blinks: talking and blinking while the
    # person is calibrated must not become their identity
    observed_px: float = 2.0  # landmark motion (px per unit weight) below which a shape's L2 grows
    neutral_bias: bool = True  # learn each person's resting-face landmark offsets while calibrating
    keyframe_every: int = 5  # after calibration: identity evidence from every n-th frame ...
    keyframe_weight: float = 1.0  # ... as much as a calibration frame: a calibration during speech fades sooner
    id_prior: float = 40.0  # identity prior weight (per unit of sigma, squared)
    # The identity a stream hands on (the mesh, recordings, streams) is the same accumulated evidence solved
    # under a firmer prior. Inside the fit the looser identity also takes up each person's landmark-detector
    # offsets, which helps read expressions (a firmer one there cost blinks: r 0.864 -> 0.81); as a shape it is
    # further from the truth than the mean face (synthetic clips: identity 3.51 mm, the mean 2.99, this 2.93).
    shape_id_prior: float = 1000.0
    # Shapes that can imitate a bigger one (a lip gap from mouthLowerDown instead of jawOpen) pay more for the
    # same evidence: the semantic shape comes first. eyeSquint no longer does: the primary stage gives the lid
    # gap to eyeBlink before it can move, and the extra price kept it from ever passing 0.05 on the shared
    # clips (blinks unchanged without it: r 0.895 / 0.891; it still pays for being barely seen, about x3.6).
    l2_scale: dict[str, float] = field(default_factory=lambda: dict(SECONDARY_SHAPES))
    # Coarse to fine: first only the primary shapes move (the others held near zero), then all, with the
    # primaries kept near their first answer: a mouth opening goes to jawOpen before its imitators.
    primary_first: bool = True
    primary_shapes: tuple[str, ...] = ("jawOpen", "eyeBlink_L", "eyeBlink_R")
    w_primary_keep: float = 1e4
    primary_iterations: int = 2
    # The openings of the inner lips and eyelids (upper minus lower point of each pair) while the primary shapes
    # are solved: differences are blind to small pose errors, so the lip gap goes to jawOpen and the lid gap to
    # eyeBlink, not to the shapes that imitate them (mouthUpperUp, mouthFunnel, noseSneer, eyeSquint).
    w_opening_lips: float = 100.0
    w_opening_lids: float = 100.0
    # In a stream, while all shapes are solved, the brow shapes also read each brow point's offset from the
    # nearer corner of its eye (this weight): a brow moves against the eye's corners, which a tilt of the head
    # moves with it. The offsets are evidence for the brows only: the pose and the other shapes come from the
    # whole face as before (with the offsets as evidence for them too, the pose followed the brows and jawOpen
    # read worse; with the brows in the primary stage, solved before the cheeks, they took part of a smile).
    # Under the 2D term alone the L2 kept the brows at a third of their motion even on exact landmarks.
    # Shared clips, within-clip r with dlib's brow heights, the pitch held (browInnerUp; browOuterUp L / R):
    # 0.451; 0.347 / 0.376 -> 0.435; 0.426 / 0.539 (both corners of the eye: 0.458; 0.379 / 0.486; weight 100:
    # 0.454; 0.368 / 0.482), MediaPipe's scores 0.462; 0.399 / 0.495. A still photo has no resting face to
    # measure the offsets from (the brows' height is identity as much as expression there): its brows read
    # the 2D term alone.
    stream_brows: tuple[str, ...] = ("browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R",
                                     "browOuterUp_L", "browOuterUp_R")
    w_brow_heights: float = 30.0
    # The eye contours (lid margins and corners) move with every blink and squint: their share in the identity
    # evidence, so that the eyes' state in the calibration frames does not become the person's eye shape.
    identity_lids: float = 0.0
    # The identity's eyelid openings (upper minus lower point of each lid pair, vertical) are held at this
    # multiple of the mean face's opening as a share of that eye's width, with this weight (per cm squared):
    # the eyes' resting state is the same for every person and every start, so eyeBlink reads how closed an
    # eye is, not how it differs from a by-product of the rest of the face; above 1, so that hardly anyone's
    # open eyes sit against eyeBlink's bound at 0. Eight shared clips, r(eyeBlink L / R): whole clips
    # 0.872 / 0.871 -> 0.882 / 0.871; tracked from their middle 0.798 / 0.828 -> 0.877 / 0.871; the same clips
    # with the face at 0.6 x in a 1280x720 frame 0.805 / 0.805 -> 0.866 / 0.864 (MediaPipe 0.757 / 0.816).
    lid_opening: float = 1.2
    w_lid_opening: float = 1e5
    # The resting offset of an inner-lip pair is the same for both lips: a person's lip line may sit higher or
    # lower than the model's, but the lips at rest are closed, so a calibration during speech does not put part
    # of the mouth opening into the resting face (which then read jawOpen lower for good).
    closed_lips_at_rest: bool = True
    photo_rounds: int = 2  # a photo: identity and pose/expressions solved in turn this often
    # A still photo has no resting frames to tell the person's face from an expression, and one view's landmarks
    # say little about identity: both priors are firmer there (the expressions' L2 times photo_l2; the identity
    # prior photo_id_prior). Synthetic faces: vertex error 3.21 -> 2.98 mm, false expressions 2.7 -> 1.6 weight
    # units a face; a stream's calibration sums many frames and keeps w_l2 and id_prior.
    photo_l2: float = 4.0
    photo_id_prior: float = 200.0
    tolerance: float = 1e-3  # stop when no step entry (rad, cm, weight) exceeds this
    # The pitch (rotation about the camera's x axis) towards the encoder's, per rad squared. Landmarks read a head
    # looking up or down as less tilted than it is (MediaPipe's own matrix too); the encoder, trained on turned
    # faces, reads the tilt better, and the two together beat either (turned validation faces: pitch error 3.7
    # fit, 3.0 encoder, 2.9 both).
    w_pitch_encoder: float = 1e5


@dataclass
class Stage:
    """One pass of the fit: which shapes move (mask, idx), their bases as the fit uses them (E: (3, K, N)
    float32; flat: (N*3, K)), the held shapes' (flat_other), whether the openings of lips and lids are a term,
    and, when the brows' offsets from the eye corners are one, the brows' rows in the system (evidence for
    them alone; None without)."""

    mask: np.ndarray
    idx: np.ndarray
    E: np.ndarray
    flat: np.ndarray
    flat_other: np.ndarray
    openings: bool
    brows: slice | None = None  # 6 + the brow shapes' positions in idx: contiguous


@dataclass
class Linearization:
    """A stage's Jacobian where its first iteration took it, kept for the stage's later iterations (chord
    Gauss-Newton): they take fresh residuals at their own point but this Jacobian and its J^T J. Building the
    Jacobian and J^T J was two thirds of an iteration; the steps a stage takes after its first are small, so its
    answer stays where full Gauss-Newton's would be (151 frames of a shared clip: weights within 0.009, 99% of
    them within 0.003, where a third full iteration moves them by up to 0.02) at 0.79x the time."""

    AT: np.ndarray  # (unknowns, residuals) float32, the transposed Jacobian
    H: np.ndarray  # upper triangle of J^T J of all the data terms
    brows: np.ndarray | None  # the brows' offsets' rows (brow shapes, residuals)
    depth: tuple[np.ndarray, np.ndarray] | None  # the relative depth's rows for the rotation's x and y


@dataclass
class FitState:
    identity: np.ndarray | None = None  # what the fit uses
    shape_identity: np.ndarray | None = None  # what a stream hands on (FitConfig.shape_id_prior)
    A: np.ndarray | None = None  # accumulated identity normal equations
    b: np.ndarray | None = None
    frames: int = 0
    previous: dict[str, np.ndarray] | None = None  # unfiltered pose and expressions of the last frame
    offsets: list[np.ndarray] = field(default_factory=list)  # per calibration frame: (N, 3) model-frame residuals
    bias: np.ndarray | None = None  # (N, 3) this person's resting-face offset of each landmark point


@dataclass
class FitInfo:
    iterations: int
    rms_px: float  # weighted-free RMS of the 2D residual after the fit
    start_rms_px: float
    calibrating: bool


def _solve_upper(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve H x = g for a symmetric positive definite H given by its upper triangle (Cholesky, LAPACK posv);
    a general solve of the symmetrized matrix if it is not positive definite."""
    _, x, info = posv(H, g, lower=0)
    if info == 0:
        return x
    return np.linalg.solve(np.triu(H) + np.triu(H, 1).T, g)


def _gram(AT: np.ndarray) -> np.ndarray:
    """The upper triangle of AT AT^T (one BLAS syrk; AT.T is Fortran-ordered, so no copy) for a float32 AT,
    returned in float64. The fit writes its Jacobians in float32: that halves the memory traffic of the two
    biggest products of a frame (the rotated bases and this one), and moves the fitted weights by under 1e-5."""
    return ssyrk(1.0, AT.T, trans=1).astype(np.float64)


def _times(AT: np.ndarray, res: np.ndarray) -> np.ndarray:
    """AT res for a float32 AT (see _gram), in float64."""
    return (AT @ res.astype(np.float32)).astype(np.float64)


def _rodrigues(w: np.ndarray) -> np.ndarray:
    """Rotation by the axis-angle vector w (scalar math: this runs several times a frame)."""
    x, y, z = float(w[0]), float(w[1]), float(w[2])
    th = math.sqrt(x * x + y * y + z * z)
    if th < 1e-12:
        return np.eye(3)
    x, y, z = x / th, y / th, z / th
    c, s = math.cos(th), math.sin(th)
    C = 1.0 - c
    return np.array([[c + x * x * C, x * y * C - z * s, x * z * C + y * s],
                     [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
                     [z * x * C - y * s, z * y * C + x * s, c + z * z * C]])


def _rotvec_x(Q: np.ndarray) -> float:
    """The x component of the axis-angle vector of rotation Q (as cv2.Rodrigues gives it, in scalar math)."""
    cos = min(1.0, max(-1.0, 0.5 * (Q[0, 0] + Q[1, 1] + Q[2, 2] - 1.0)))
    th = math.acos(cos)
    if th > math.pi - 1e-3:  # near a half turn the axis comes from the symmetric part: OpenCV's way
        return float(cv2.Rodrigues(Q)[0][0, 0])
    scale = 0.5 if th < 1e-6 else 0.5 * th / math.sin(th)
    return scale * (Q[2, 1] - Q[1, 2])


def basis_rows(R: np.ndarray, B: np.ndarray, u0: np.ndarray, u2: np.ndarray, v1: np.ndarray, v2: np.ndarray,
               out_u: np.ndarray, out_v: np.ndarray) -> None:
    """The Jacobian rows (K, N) of the u and v residuals for a basis B (3, K, N) of model-frame displacements under
    rotation R, written into out_u and out_v: the basis rotated in one product, times the projection's nonzero
    entries per point (u row (u0, 0, u2), v row (0, v1, v2); see DenseFitter._project), weights included.
    Computed in B's precision."""
    K, N = B.shape[1:]
    u0, u2, v1, v2 = (np.asarray(c, B.dtype) for c in (u0, u2, v1, v2))
    RB = (R.astype(B.dtype) @ B.reshape(3, -1)).reshape(3, K, N)
    np.multiply(RB[0], u0, out=out_u)
    out_u += np.multiply(RB[2], u2, out=RB[0])
    np.multiply(RB[1], v1, out=out_v)
    out_v += np.multiply(RB[2], v2, out=RB[1])


def model_frame_offsets(R: np.ndarray, c: np.ndarray, uv: np.ndarray, obs: np.ndarray, focal: float) -> np.ndarray:
    """(N, 3) the 2D residuals obs - uv carried back into the model frame: the lateral camera-frame offset at
    each point's depth (c, camera frame), rotated back by R^T. What the calibration and the correspondence
    refinement add to the model points."""
    d = -c[:, 2:3] / focal
    res = obs - uv
    return np.concatenate([res[:, :1] * d, -res[:, 1:] * d, np.zeros_like(d)], 1) @ R


def euler_matrix(angles: np.ndarray) -> np.ndarray:
    """(3,) Euler angles (rad) to a rotation matrix, float64: the camera module's convention (R = Rz Ry Rx),
    in scalar math (the torch version costs tens of microseconds a call)."""
    sx, sy, sz = (math.sin(float(v)) for v in angles)
    cx, cy, cz = (math.cos(float(v)) for v in angles)
    return np.array([[cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
                     [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
                     [-sy, cy * sx, cy * cx]])


def matrix_euler(R: np.ndarray) -> np.ndarray:
    """Inverse of euler_matrix for |yaw| < 90 degrees (as camera.matrix_to_euler)."""
    return np.array([math.atan2(R[2, 1], R[2, 2]), math.asin(min(1.0, max(-1.0, -R[2, 0]))),
                     math.atan2(R[1, 0], R[0, 0])])


def landmark_weights(cfg: FitConfig, n: int) -> np.ndarray:
    """(n,) per-landmark weights of the 2D term: eyelids and inner lips up, the face oval down. Training's dense
    landmark term (train.losses) uses the same."""
    w = np.ones(n)
    w[FACE_OVAL] = cfg.w_oval
    w[CHIN] = cfg.w_chin
    w[EYELIDS.ravel()] = cfg.w_eyelid
    w[INNER_LIPS.ravel()] = cfg.w_inner_lip
    w[LIP_CORNERS] = cfg.w_inner_lip
    return w


class DenseFitter:
    """Callable per frame: (encoder's x, dense landmarks in crop pixels, their relative depth) -> fitted x."""

    def __init__(self, model: MultiLevelModel, corr: Correspondence, camera: Camera,
                 cfg: FitConfig | None = None) -> None:
        self.model, self.corr, self.camera, self.cfg = model, corr, camera, cfg or FitConfig()
        self._person: tuple[np.ndarray, np.ndarray] | None = None  # see _static
        lay = model.layout
        self.sl = lay.slices()
        V = model.n_vertices
        M = corr.matrix(V)

        def rows(basis: np.ndarray) -> np.ndarray:  # (K, V*3) -> (K, 468, 3)
            b = basis.reshape(basis.shape[0], V, 3)
            return np.stack([M @ b[k] for k in range(b.shape[0])]) if len(b) else np.zeros((0, len(corr.tri), 3))

        self.mean = M @ model.mean.numpy().astype(np.float64)
        self.id_rows = rows(model.id_basis.numpy().astype(np.float64))
        self.id_3kn = np.ascontiguousarray(self.id_rows.transpose(2, 0, 1), np.float32)  # (3, K, N), as exp_3kn
        self.exp_rows = rows(model.exp_basis.numpy().astype(np.float64))
        self.exp_flat = np.ascontiguousarray(self.exp_rows.transpose(1, 2, 0)).reshape(-1, len(self.exp_rows))
        # (3, K, N), float32 (see _gram): rotated in one product
        self.exp_3kn = np.ascontiguousarray(self.exp_rows.transpose(2, 0, 1), np.float32)
        geo = model.geo_corrective
        self.geo_rows = rows(geo.basis.detach().numpy().astype(np.float64)) if isinstance(geo, LinearCorrective) \
            else None
        # the lid margins and the inner lips: their openings are the expressions' (eyeBlink, jawOpen) alone
        self.openings = np.concatenate([EYELIDS.ravel(), INNER_LIPS.ravel()])
        if self.geo_rows is not None:  # the fit's: without the openings, float32 (a product every frame)
            fit_rows = self.geo_rows.copy()
            fit_rows[:, self.openings] = 0.0
            self.geo_fit_flat = fit_rows.reshape(len(fit_rows), -1).astype(np.float32)
        self.id_sigma = model.id_sigma.numpy().astype(np.float64)
        self.weights = landmark_weights(self.cfg, len(corr.tri))
        self.sqrt_weights = np.sqrt(self.weights)
        self.sqrt_depth_weights = np.sqrt(self.cfg.w_depth * self.weights)
        # Shapes the landmarks barely see (pixels of motion per unit weight below `observed_px`) pay more in
        # proportion: landmark noise and depth errors must not drive them (jawForward, cheekSquint, eyeLook*).
        seen = np.array(list(self.observability().values()))
        self.l2_scale = np.array([self.cfg.l2_scale.get(n, 1.0) for n in model.exp_names]) \
            * np.maximum(1.0, self.cfg.observed_px / np.maximum(seen, 1e-3))
        self.primary = np.array([n in self.cfg.primary_shapes for n in model.exp_names])
        self.pairs = np.concatenate([EYELIDS, INNER_LIPS])
        self.pair_weight = np.sqrt(np.repeat([self.cfg.w_opening_lids, self.cfg.w_opening_lips],
                                             [len(EYELIDS), len(INNER_LIPS)]))
        self.pair_scale = self.pair_weight / np.sqrt(self.weights[self.pairs[:, 0]])  # J rows carry sqrt(w)
        self.pair_weight_uv = np.tile(self.pair_weight, 2)  # the openings' u rows, then their v rows
        # The brows' offsets (see _data_terms): each brow point and the nearer corner of its eye; the residual
        # and Jacobian columns of their two points (u, then v); the offsets' weight (sqrt), and the swap of the
        # brow point's own sqrt weight (which its Jacobian rows carry) for it.
        self.brow_pairs = np.array([[b, corners[np.argmin(np.abs(self.mean[corners, 0] - self.mean[b, 0]))]]
                                    for side, corners in zip(BROWS, EYE_CORNERS, strict=True) for b in side])
        b0, b1 = self.brow_pairs.T
        n_points = len(corr.tri)
        self.brow_cols = (np.concatenate([b0, n_points + b0]), np.concatenate([b1, n_points + b1]))
        self.brow_weight = np.full(2 * len(b0), math.sqrt(self.cfg.w_brow_heights))
        self.brow_scale = (self.brow_weight / np.tile(self.sqrt_weights[b0], 2)).astype(np.float32)
        brow_shapes = np.array([n in self.cfg.stream_brows for n in model.exp_names])
        every = np.ones(len(model.exp_names), bool)
        self.primary_stage = self._stage(self.primary, True)
        self.all_stage = self._stage(every, False)  # photos, calibration: all shapes, the 2D term alone
        self.stream_stage = self._stage(every, False, brow_shapes) if brow_shapes.any() else self.all_stage
        self.identity_weights = self.weights.copy()
        self.identity_weights[EYE_CONTOURS] *= self.cfg.identity_lids
        lid_rows, lid_target = self._lid_opening_rows()
        self.lid_hold = self.cfg.w_lid_opening * lid_rows.T @ lid_rows  # added to every identity solve
        self.lid_hold_b = self.cfg.w_lid_opening * lid_rows.T @ lid_target
        self.state = FitState()

    def _stage(self, mask: np.ndarray, openings: bool, brows: np.ndarray | None = None) -> Stage:
        bases = (self.exp_3kn[:, mask], self.exp_flat[:, mask], self.exp_flat[:, ~mask])
        rows = None
        if brows is not None:
            at = np.flatnonzero(brows[mask])
            if not (np.diff(at) == 1).all():
                raise ValueError("the brow shapes must be neighbours in the model's expression order")
            rows = slice(6 + at[0], 7 + at[-1])
        return Stage(mask, np.flatnonzero(mask), *(np.ascontiguousarray(b) for b in bases), openings, rows)

    def reset(self, keep_identity: bool = True) -> None:
        """A new shot or a lost face: forget the previous frame; keep the person unless told otherwise."""
        if keep_identity:
            self.state.previous = None
        else:
            self.state = FitState()

    def relearn(self) -> None:
        """Learn the person again from the next frames, as at a stream's start (identity and resting face:
        a start with raised brows or a smile keeps them as the rest until then); the last frame's pose and
        expressions stay the starting point, so the tracking goes on without a jump."""
        self.state = FitState(previous=self.state.previous)

    # -- the model at the landmarks ---------------------------------------------------------------------
    def _identity_points(self, identity: np.ndarray) -> np.ndarray:
        """The landmark points of the identity (N, 3). It changes only on keyframes: kept from the last call while
        the identity is the same."""
        n = len(self.mean)  # (K,) @ (K, N*3): BLAS, several times faster than the einsum
        if self._person is None or not np.array_equal(self._person[0], identity):
            self._person = (identity.copy(), self.mean + (identity @ self.id_rows.reshape(len(identity), 3 * n))
                            .reshape(n, 3))
        return self._person[1]

    def _static(self, identity: np.ndarray, delta_g: np.ndarray) -> np.ndarray:
        """The landmark points of the identity and geometry correctives (N, 3)."""
        s = self._identity_points(identity)
        if self.geo_rows is None:
            return s.copy()  # the callers change what they get
        return s + (delta_g @ self.geo_rows.reshape(len(delta_g), -1)).reshape(-1, 3)

    def _fit_static(self, identity: np.ndarray, delta_g: np.ndarray) -> np.ndarray:
        """The fit's model of the landmark points before expressions and pose (N, 3): the identity, the encoder's
        geometry correctives except at the lid margins and inner lips (their openings are the expressions'; see
        the module's docstring) and this person's resting offsets."""
        s = self._identity_points(identity)
        s = s.copy() if self.geo_rows is None else \
            s + (delta_g.astype(np.float32) @ self.geo_fit_flat).reshape(-1, 3)
        return s if self.state.bias is None else s + self.state.bias

    def _points(self, s: np.ndarray, a: np.ndarray, R: np.ndarray, t: np.ndarray, jacobian: bool = True
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Camera-frame landmark points (N, 3) for static points s and expressions a at pose (R, t), their
        projections (N, 2) and the projection Jacobian (N, 2, 3; None unless asked for)."""
        c = (s + (self.exp_flat @ a).reshape(-1, 3)) @ R.T + t
        return (c, *self._project(c, jacobian))

    def fitted_points(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last fitted frame's camera-frame points (N, 3), projections (N, 2) and rotation, from the
        correctives of its output x and the fit's own identity, pose and expressions (this person's resting
        offsets included)."""
        st, sl = self.state, self.sl
        identity = st.identity if st.identity is not None else x[sl["alpha_id"]]
        s = self._fit_static(identity.astype(np.float64), x[sl["delta_g"]].astype(np.float64))
        R = euler_matrix(st.previous["rot"])
        c, uv, _ = self._points(s, st.previous["exp"], R, st.previous["trans"])
        return c, uv, R

    def _project(self, c: np.ndarray, jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Crop pixels (N, 2) of camera-frame points and, if asked, the projection's Jacobian (N, 2, 3)."""
        f, W, H = self.camera.focal, self.camera.width, self.camera.height
        iz = f / -c[:, 2]  # f / depth
        px, py = c[:, 0] * iz, c[:, 1] * iz
        uv = np.empty((len(c), 2))
        uv[:, 0] = W / 2 + px
        uv[:, 1] = H / 2 - py
        if not jacobian:
            return uv, None
        J = np.zeros((len(c), 2, 3))
        J[:, 0, 0] = iz
        J[:, 0, 2] = px * iz / f
        J[:, 1, 1] = -iz
        J[:, 1, 2] = -py * iz / f
        return uv, J

    def _data_terms(self, m: np.ndarray, obs: np.ndarray, z_obs: np.ndarray | None, R: np.ndarray, t: np.ndarray,
                    E: np.ndarray, openings: bool, brows: slice | None = None, lin: Linearization | None = None
                    ) -> tuple[np.ndarray, np.ndarray, float, Linearization]:
        """The landmark terms' Gauss-Newton system at pose (R, t) of the model-frame points m (N, 3: the static
        points and the expressions) for the unknowns (rotation increment, translation, the expressions whose bases
        E (3, K, N) holds): the upper triangle of J^T J, J^T r, the unweighted RMS of the 2D residual, and the
        Jacobian it used. Given `lin` (the same stage's, from an earlier point), only the residuals are new.
        Terms: the weighted 2D residuals; with `openings`, those of DenseFitter.pairs
        (upper minus lower point); MediaPipe's relative depth (z_obs), evidence for the rotation only. `brows`:
        the rows of the system (6 + the unknowns' positions) that are the brow shapes, which then also read the
        brow points' offsets from the eye corners, evidence for them alone (the pose and the other shapes keep
        to the 2D term, whatever those say).
        All rows go into one matrix, transposed (one row per unknown, one column per residual: all u, then all
        v, then the openings' u and v), whose product with itself is one symmetric rank-k update (BLAS syrk). At
        a few hundred microseconds an iteration the rest is numpy's per-call cost, so the Jacobian is written
        row by row from the projection's four nonzero entries per point, and the expressions' rows from the
        bases rotated in one product; each row is contiguous."""
        sw, focal = self.sqrt_weights, self.camera.focal
        pairs = self.pairs if openings else self.pairs[:0]
        N, n_pairs = len(m), len(pairs)
        res = np.empty(2 * N + 2 * n_pairs)
        Rm = m @ R.T
        c = Rm + t
        iz = focal / -c[:, 2]  # f / depth
        px, py = c[:, 0] * iz, c[:, 1] * iz
        ru, rv = res[:N], res[N : 2 * N]
        np.subtract(self.camera.width / 2 + px, obs[:, 0], out=ru)
        np.subtract(self.camera.height / 2 - py, obs[:, 1], out=rv)
        rms = math.sqrt(float(res[: 2 * N] @ res[: 2 * N]) / N)
        if n_pairs:  # the openings' residuals (weighted below)
            res[2 * N : 2 * N + n_pairs] = ru[pairs[:, 0]] - ru[pairs[:, 1]]
            res[2 * N + n_pairs :] = rv[pairs[:, 0]] - rv[pairs[:, 1]]
        if brows is not None:  # their residuals, u then v (weighted like the openings)
            r_brows = (res[self.brow_cols[0]] - res[self.brow_cols[1]]) * self.brow_weight
        ru *= sw
        rv *= sw
        if n_pairs:
            res[2 * N :] *= self.pair_weight_uv
        d = -c[:, 2]
        dm = d.sum() / N
        use_depth = z_obs is not None and self.cfg.w_depth > 0
        if use_depth:
            rd = ((d - dm) * (focal / dm) - z_obs) * self.sqrt_depth_weights
        if lin is None:
            lin = self._linearize(Rm, iz, px, py, R, E, pairs, brows, dm if use_depth else None)
        g = _times(lin.AT, res)
        if lin.brows is not None:
            g[brows] += lin.brows @ r_brows
        if lin.depth is not None:
            g[0] += lin.depth[0] @ rd
            g[1] += lin.depth[1] @ rd
        return lin.H.copy(), g, rms, lin

    def _linearize(self, Rm: np.ndarray, iz: np.ndarray, px: np.ndarray, py: np.ndarray, R: np.ndarray,
                   E: np.ndarray, pairs: np.ndarray, brows: slice | None, dm: float | None
                   ) -> Linearization:
        """The Jacobian of _data_terms' residuals at the rotated points Rm (their projection's f / depth iz and
        its x and y, px and py), and its J^T J; dm: the points' mean depth, None without the relative depth term."""
        sw, focal = self.sqrt_weights, self.camera.focal
        N, K, n_pairs = len(Rm), E.shape[1], len(pairs)
        AT = np.empty((6 + K, 2 * N + 2 * n_pairs), np.float32)  # see _gram
        Ju, Jv = AT[:, :N], AT[:, N : 2 * N]
        # the projection's Jacobian d(u, v)/dc, weighted: u row (a0, 0, a2), v row (0, -a0, b2)
        a0 = sw * iz
        a2 = a0 * px / focal
        b2 = -a0 * py / focal
        x_, y_, z_ = Rm[:, 0], Rm[:, 1], Rm[:, 2]
        # dc/d(omega) = -[Rm]x: each row of the projection Jacobian times it is the cross product Rm x row
        np.multiply(y_, a2, out=Ju[0])
        np.subtract(z_ * a0, x_ * a2, out=Ju[1])
        np.multiply(y_, -a0, out=Ju[2])
        np.add(y_ * b2, z_ * a0, out=Jv[0])
        np.multiply(x_, -b2, out=Jv[1])
        np.multiply(x_, -a0, out=Jv[2])
        Ju[3], Ju[4], Ju[5] = a0, 0.0, a2  # dc/dt = I
        Jv[3], Jv[4], Jv[5] = 0.0, -a0, b2
        basis_rows(R, E, a0, a2, -a0, b2, Ju[6:], Jv[6:])  # dc/da = R E
        if n_pairs:  # the rows carry sqrt(w) of their points: pair_scale swaps it for the openings' weight
            su, sv = AT[:, 2 * N : 2 * N + n_pairs], AT[:, 2 * N + n_pairs :]
            np.subtract(Ju[:, pairs[:, 0]], Ju[:, pairs[:, 1]], out=su)
            np.subtract(Jv[:, pairs[:, 0]], Jv[:, pairs[:, 1]], out=sv)
            su *= self.pair_scale
            sv *= self.pair_scale
        H = _gram(AT)
        B = rows = None
        if brows is not None:  # evidence for the brows alone: a small block of their own, added to theirs
            JB = AT[brows]
            B = ((JB[:, self.brow_cols[0]] - JB[:, self.brow_cols[1]]) * self.brow_scale).astype(np.float64)
            H[brows, brows] += B @ B.T
        # Relative depth about the mean, against MediaPipe's: evidence for the rotation only (a translation moves
        # all depths alike, which the mean removes; as evidence for the expressions it read them worse). Its
        # derivative under the rotation increment is (-y, x, 0) of the rotated points, centred, at the fixed scale
        # f / mean depth.
        if dm is not None:
            k = self.sqrt_depth_weights * (focal / dm)
            j0 = (y_.sum() / N - y_) * k
            j1 = (x_ - x_.sum() / N) * k
            H[0, 0] += j0 @ j0
            H[0, 1] += j0 @ j1
            H[1, 1] += j1 @ j1
            rows = (j0, j1)
        return Linearization(AT, H, B, rows)

    def _iterate(self, s, obs, z_obs, R, t, a, prev, a_prev, enc_exp, R_enc, l2w, l2_target, iterations,
                 stage: Stage):
        """Gauss-Newton steps from (R, t, a); R_enc is the encoder's rotation (its pitch a prior); l2w (K,) and
        l2_target (K,) are the expressions' L2 term.
        `stage`: only its shapes are unknowns (the others stay as they are); the openings of lips and lids (the
        primary stage) and the brows' offsets from the eye corners (a stream's final stage) are terms of their
        own (see FitConfig.w_opening_lips, FitConfig.w_brow_heights)."""
        cfg = self.cfg
        idx, E, flat = stage.idx, stage.E, stage.flat
        held = ~stage.mask
        fixed = s + (stage.flat_other @ a[held]).reshape(-1, 3) if held.any() else s  # the held shapes, summed once
        P = 6 + len(idx)
        a = a.copy()
        # priors on the expressions (previous frame, encoder, per-shape L2) are diagonal: their weights and
        # weighted targets, summed once
        w_prev = cfg.w_previous if prev else 0.0
        l2 = l2w[idx]
        w_sum = (w_prev + cfg.w_encoder) + l2
        w_target = (w_prev * a_prev[idx] + cfg.w_encoder * enc_exp[idx]) + l2 * l2_target[idx]
        diag = np.full(P, 1e-6)  # the damping and the priors' diagonal: the same every iteration
        diag[6:] += w_sum
        if prev is not None:
            diag[:6] += cfg.w_pose_previous
        start_rms, done, lin = None, 0, None
        for _ in range(iterations):  # the first iteration's Jacobian serves the later ones (Linearization)
            done += 1
            H, g, rms, lin = self._data_terms(fixed + (flat @ a[idx]).reshape(-1, 3), obs, z_obs, R, t, E,
                                              stage.openings, stage.brows, lin)
            if start_rms is None:
                start_rms = rms
            g[6:] += w_sum * a[idx] - w_target
            if prev is not None:  # pull the pose to the last frame (its LM-style damping is in diag)
                g[3:6] += cfg.w_pose_previous * 0.01 * (t - prev["trans"])
            H.flat[:: P + 1] += diag
            if cfg.w_pitch_encoder:  # the increment's x component towards the encoder's rotation
                H[0, 0] += cfg.w_pitch_encoder
                g[0] -= cfg.w_pitch_encoder * _rotvec_x(R_enc @ R.T)
            step = -_solve_upper(H, g)
            R = _rodrigues(step[:3]) @ R
            t = t + step[3:6]
            moved = a[idx] + step[6:]
            np.minimum(np.maximum(moved, 0.0, out=moved), 1.0, out=moved)
            step[6:] = moved - a[idx]  # what the bounds let through: a weight pushed against 0 or 1 has settled
            a[idx] = moved
            if np.abs(step).max() < cfg.tolerance:
                break
        return R, t, a, done, start_rms

    def __call__(self, x: np.ndarray, obs: np.ndarray, depth: np.ndarray | None = None, stream: bool = True
                 ) -> tuple[np.ndarray, FitInfo]:
        """x: the encoder's (D,) vector; obs: (468, 2) crop pixels; depth: (468,) crop pixels (MediaPipe z).
        `stream`: frames of one video or camera (the first frames calibrate the person's resting face); a
        still photo is fitted on its own, expressions free."""
        cfg, sl, st = self.cfg, self.sl, self.state
        x = np.asarray(x, np.float64).copy()
        identity = st.identity if st.identity is not None else x[sl["alpha_id"]]
        calibrating = stream and st.frames < cfg.calibration_frames
        enc_exp = np.clip(x[sl["alpha_exp"]], 0, 1)
        prev = st.previous
        R_enc = euler_matrix(x[sl["rot"]])
        R = euler_matrix(prev["rot"] if prev else x[sl["rot"]])
        t = (prev["trans"] if prev else x[sl["trans"]]).copy()
        a = (prev["exp"] if prev else enc_exp).copy()
        a_prev = prev["exp"] if prev else enc_exp
        s = self._fit_static(identity, x[sl["delta_g"]])
        K = self.exp_rows.shape[0]
        z_obs = None if depth is None else depth - depth.mean()
        if calibrating:  # the person's evidence comes from a solve with expressions held near zero ...
            Rc, tc, ac, _, _ = self._iterate(s, obs, z_obs, R, t, np.zeros(K), prev, a_prev, enc_exp, R_enc,
                                             np.where(self.primary, cfg.calibration_l2_primary, cfg.calibration_l2),
                                             np.zeros(K), cfg.iterations, self.all_stage)
            c, uv, Jp = self._points(s, ac, Rc, tc)
            self._accumulate_identity(identity, Rc, Jp, uv, obs, True)
            if cfg.neutral_bias:
                self._accumulate_bias(Rc, c, uv, obs)
        # ... while the frame's own answer is the free fit, coarse to fine
        l2w = cfg.w_l2 * self.l2_scale * (1.0 if stream else cfg.photo_l2)
        start_rms = None
        if cfg.primary_first:  # the primary shapes explain what they can first, the others at zero
            a = np.where(self.primary, a, 0.0)
            R, t, a, _, start_rms = self._iterate(s, obs, z_obs, R, t, a, prev, a_prev, enc_exp, R_enc, l2w,
                                                  np.zeros(K), cfg.primary_iterations, self.primary_stage)
            l2w = l2w + np.where(self.primary, cfg.w_primary_keep, 0.0)
            target = np.where(self.primary, a, 0.0)
        else:
            target = np.zeros(K)
        final = self.stream_stage if stream else self.all_stage
        R, t, a, done, start2 = self._iterate(s, obs, z_obs, R, t, a, prev, a_prev, enc_exp, R_enc, l2w, target,
                                              cfg.iterations, final)
        if not stream:  # a photo: identity from this frame alone, alternating with pose and expressions
            for _ in range(cfg.photo_rounds):
                _, uv, Jp = self._points(s, a, R, t)
                identity = self._solve_identity(*self._identity_evidence(identity, R, Jp, uv, obs),
                                                cfg.photo_id_prior)
                s = self._fit_static(identity, x[sl["delta_g"]])
                R, t, a, done, _ = self._iterate(s, obs, z_obs, R, t, a, prev, a_prev, enc_exp, R_enc, l2w, target,
                                                 cfg.iterations, final)
            st.identity = identity
        start_rms = start_rms if cfg.primary_first else start2
        keyframe = stream and not calibrating and st.frames % cfg.keyframe_every == 0
        c, uv, Jp = self._points(s, a, R, t, jacobian=keyframe)
        d = (uv - obs).ravel()
        rms = math.sqrt(float(d @ d) / len(uv))
        if keyframe:  # keyframes add identity evidence at the fitted state
            self._accumulate_identity(identity, R, Jp, uv, obs, False)
        st.previous = {"rot": matrix_euler(R), "trans": t.copy(), "exp": a.copy()}
        st.frames += 1
        out = x.copy()
        out[sl["rot"]] = st.previous["rot"]
        out[sl["trans"]] = t
        out[sl["alpha_exp"]] = a
        out[sl["alpha_id"]] = st.shape_identity if stream and st.shape_identity is not None else \
            st.identity if st.identity is not None else identity
        return out.astype(np.float32), FitInfo(done, rms, start_rms or rms, calibrating)

    def observability(self, x: np.ndarray | None = None) -> dict[str, float]:
        """Per expression: RMS landmark motion (crop pixels, weighted as in the fit) for a full unit of that
        shape at the frontal default pose: how well the landmarks can see it. Near-zero shapes (the tongue,
        cheek puffs) are driven by the priors and the encoder, not by the landmarks."""
        sl = self.sl
        if x is None:
            x = np.zeros(self.model.layout.size)
            x[sl["trans"]] = [0.0, 0.0, -115.0]
        s = self._static(x[sl["alpha_id"]], x[sl["delta_g"]])
        c = s @ euler_matrix(x[sl["rot"]]).T + x[sl["trans"]]
        _, Jp = self._project(c)
        motion = np.einsum("nij,knj->kni", Jp, self.exp_rows) * np.sqrt(self.weights)[None, :, None]
        rms = np.sqrt((motion**2).sum(-1).mean(-1))
        return dict(zip(self.model.exp_names, rms.tolist(), strict=True))

    def _accumulate_bias(self, R: np.ndarray, c: np.ndarray, uv: np.ndarray, obs: np.ndarray) -> None:
        """Where this person's resting face puts each landmark relative to the model's point (what identity
        cannot express: lid margins, lip lines): the residual carried back to the model frame at the point's
        depth, median over the calibration frames, then added to the model points for good."""
        st = self.state
        st.offsets.append(model_frame_offsets(R, c, uv, obs, self.camera.focal))
        if len(st.offsets) >= self.cfg.calibration_frames:
            st.bias = np.median(np.stack(st.offsets), axis=0)
            st.bias[EYELIDS.ravel()] = 0.0
            if self.cfg.closed_lips_at_rest:
                st.bias[INNER_LIPS] = st.bias[INNER_LIPS].mean(axis=1, keepdims=True)
            st.offsets = []

    def _identity_evidence(self, identity: np.ndarray, R: np.ndarray, Jp: np.ndarray, uv: np.ndarray,
                           obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normal equations (A, upper triangle only; b) for the identity weights from one frame's weighted 2D
        residuals at its fitted state, eyelids weighted down (MediaPipe's relative depth was tried as identity
        evidence too: no change on videos, synthetic faces or photos). Built transposed, as in _iterate."""
        sw = np.sqrt(self.identity_weights)
        N = len(uv)
        JT = np.empty((len(identity), 2 * N), np.float32)
        basis_rows(R, self.id_3kn, Jp[:, 0, 0] * sw, Jp[:, 0, 2] * sw, Jp[:, 1, 1] * sw, Jp[:, 1, 2] * sw,
                   JT[:, :N], JT[:, N:])
        r = ((obs - uv) * sw[:, None]).T.ravel()
        return _gram(JT), _times(JT, r + identity @ JT)

    def _lid_opening_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows C (pairs, K) and targets d such that C @ identity = d holds each eyelid pair's vertical opening
        at FitConfig.lid_opening times the mean face's share of its eye's width (both linear in the identity)."""
        upper, lower = EYELIDS.T
        left = np.isin(upper, EYE_CONTOURS[len(EYE_CONTOURS) // 2 :])
        c0, c1 = EYE_CORNERS[left.astype(int)].T  # c1 lies at the larger x: the width is c1's x minus c0's
        gap = self.id_rows[:, upper, 1] - self.id_rows[:, lower, 1]  # (K, pairs)
        width = self.id_rows[:, c1, 0] - self.id_rows[:, c0, 0]
        gap0 = self.mean[upper, 1] - self.mean[lower, 1]
        width0 = self.mean[c1, 0] - self.mean[c0, 0]
        share = self.cfg.lid_opening * gap0 / width0
        return (gap - share * width).T, share * width0 - gap0

    def _solve_identity(self, A: np.ndarray, b: np.ndarray, prior: float) -> np.ndarray:
        """The identity from normal equations A (its upper triangle is read), the prior and the lid hold."""
        return _solve_upper(A + prior * np.diag(1.0 / self.id_sigma**2) + self.lid_hold, b + self.lid_hold_b)

    def _accumulate_identity(self, identity: np.ndarray, R: np.ndarray, Jp: np.ndarray, uv: np.ndarray,
                             obs: np.ndarray, calibrating: bool) -> None:
        """Streams: calibration frames and then keyframes (every FitConfig.keyframe_every-th frame, the caller
        decides; weighted by keyframe_weight) add to one identity solve."""
        cfg, st = self.cfg, self.state
        weight = 1.0 if calibrating else cfg.keyframe_weight
        A, b = self._identity_evidence(identity, R, Jp, uv, obs)
        st.A = weight * A if st.A is None else st.A + weight * A
        st.b = weight * b if st.b is None else st.b + weight * b
        st.identity = self._solve_identity(st.A, st.b, cfg.id_prior)
        st.shape_identity = self._solve_identity(st.A, st.b, cfg.shape_id_prior)
