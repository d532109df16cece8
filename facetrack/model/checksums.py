"""SHA-256 checks for the files facetrack loads: a damaged file is named before a loader chokes on it.

The weights folder carries `SHA256SUMS` (the `sha256sum` format, so `sha256sum -c SHA256SUMS` checks it by
hand too), written by `save_weights`; the face model file carries `<file>.sha256`, written by `facetrack
model build`. A file that does not match is a one-line FacetrackError that says how to get a good copy.
Folders without a manifest (weights from before it existed) are not checked; their loaders' errors are
still caught per format.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from facetrack.errors import FacetrackError

MANIFEST = "SHA256SUMS"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, names: list[str]) -> Path:
    """SHA256SUMS for the named files of a folder (those that exist), sorted."""
    lines = [f"{sha256(folder / n)}  {n}\n" for n in sorted(names) if (folder / n).is_file()]
    out = folder / MANIFEST
    out.write_text("".join(lines))
    return out


def read_manifest(folder: Path) -> dict[str, str]:
    """name -> hex digest; {} without a manifest. A garbled manifest is itself an error."""
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    out = {}
    try:
        for line in path.read_text().splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                    raise ValueError
                out[name.strip().lstrip("*")] = digest
    except (ValueError, UnicodeDecodeError):
        raise FacetrackError(f"{path} is damaged: it should list one SHA-256 and file name per line "
                             "(reinstall the weights: git checkout weights/)") from None
    return out


def verify(path: Path, expected: str | None, fix: str) -> None:
    """Raise a one-line error naming the file and `fix` when its digest is not `expected` (None: no check)."""
    if expected is not None and sha256(path) != expected:
        raise FacetrackError(f"{path} is damaged: its SHA-256 does not match the one recorded for it ({fix})")


def verify_in_folder(path: Path, fix: str) -> None:
    """Check a file against its folder's SHA256SUMS, when the folder has one that lists it."""
    verify(path, read_manifest(path.parent).get(path.name), fix)


def write_sidecar(path: Path) -> Path:
    """`<file>.sha256` beside a single file (the face model)."""
    out = path.with_name(path.name + ".sha256")
    out.write_text(f"{sha256(path)}  {path.name}\n")
    return out


def verify_sidecar(path: Path, fix: str) -> None:
    side = path.with_name(path.name + ".sha256")
    if not side.is_file():
        return
    try:
        expected = side.read_text().split()[0]
    except (IndexError, UnicodeDecodeError, OSError):
        raise FacetrackError(f"{side} is damaged ({fix})") from None
    verify(path, expected, fix)
