"""The train/validation split, shared by `train.prepare` and `facetrack eval` so held-out photos stay held out.

The split is by source group (an image's path below its folder, or a video's name), decided by a hash of
the group name: deterministic, and a video's frames never straddle train and validation.
"""

from __future__ import annotations

import hashlib

VAL_FRACTION = 0.1


def is_val(group: str, fraction: float = VAL_FRACTION) -> bool:
    """True when the group belongs to the validation split."""
    return int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) % 10000 < fraction * 10000


def image_group(folder_name: str, relative: str) -> str:
    """The group name `train.prepare` gives a photo: '<folder name>/<path below the folder>'."""
    return f"{folder_name}/{relative}"
