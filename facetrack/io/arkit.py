"""ARKit's 52 blendshape names and the map from ICT-FaceKit's 53 expressions to them.

ICT names its shapes like ARKit with `_L`/`_R` suffixes. Two ARKit shapes are single where ICT has a pair:
`browInnerUp` and `cheekPuff` take the mean of ICT's left and right shapes. ARKit's `tongueOut` has no ICT
shape and is always 0. Everything that leaves facetrack for avatar tools (VMC, Live Link CSV, glTF morph
names) goes through `to_arkit`; the `.ftrec` recordings and `--osc` keep ICT's 53 names.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from facetrack.errors import FacetrackError

# Apple's ARFaceAnchor.BlendShapeLocation, in the order of Live Link Face's CSV columns.
ARKIT_NAMES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
NOT_MODELLED = ("tongueOut",)
EYE_LOOK_RAD = np.radians(30.0)  # eye rotation for one unit of an eyeLook shape (Live Link, synthetic eyes)


def ict_sources(arkit: str, ict_names: Sequence[str]) -> tuple[str, ...]:
    """The ICT shape names whose mean gives one ARKit shape (none for tongueOut). Shapes named alike in both
    come first (ICT's jawLeft, mouthRight are ARKit's); then `...Left` -> `..._L`; then the merged pairs."""
    if arkit in NOT_MODELLED:
        return ()
    if arkit in ict_names:
        return (arkit,)
    for side, suffix in (("Left", "_L"), ("Right", "_R")):
        if arkit.endswith(side):
            return (arkit[: -len(side)] + suffix,)
    return (arkit + "_L", arkit + "_R")


def arkit_matrix(ict_names: Sequence[str]) -> np.ndarray:
    """(53, 52) weights: ARKit values = ICT values @ matrix. A model without one of the needed ICT shapes is a
    one-line error, not a stream of zeros."""
    index = {n: i for i, n in enumerate(ict_names)}
    M = np.zeros((len(ict_names), len(ARKIT_NAMES)), np.float32)
    for j, name in enumerate(ARKIT_NAMES):
        sources = ict_sources(name, ict_names)
        missing = [s for s in sources if s not in index]
        if missing:
            raise FacetrackError(f"the face model has no expression {missing[0]!r} for ARKit's {name!r}")
        for s in sources:
            M[index[s], j] = 1.0 / len(sources)
    return M


def to_arkit(ict_names: Sequence[str], values: np.ndarray) -> np.ndarray:
    """(..., 53) ICT expression weights -> (..., 52) ARKit weights in ARKIT_NAMES order, clipped to [0, 1]."""
    return np.clip(np.asarray(values, np.float32) @ arkit_matrix(ict_names), 0.0, 1.0)


def upper_camel(name: str) -> str:
    """`eyeBlinkLeft` -> `EyeBlinkLeft`: Live Link's and most Perfect Sync avatars' spelling."""
    return name[0].upper() + name[1:]


def eye_angles(names: list[str], exp: np.ndarray) -> np.ndarray:
    """(N, 6) left yaw, pitch, roll, right yaw, pitch, roll (radians) from the eyeLook shapes, with the head
    angles' signs: yaw positive towards the person's left, pitch positive looking down."""
    e = {n: exp[:, i] for i, n in enumerate(names)}
    z = np.zeros(len(exp))
    left_yaw = e["eyeLookOut_L"] - e["eyeLookIn_L"]  # the left eye looks out towards the person's left
    right_yaw = e["eyeLookIn_R"] - e["eyeLookOut_R"]
    return EYE_LOOK_RAD * np.stack([left_yaw, e["eyeLookDown_L"] - e["eyeLookUp_L"], z,
                                    right_yaw, e["eyeLookDown_R"] - e["eyeLookUp_R"], z], 1)
