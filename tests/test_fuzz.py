"""Damaged inputs, generated: every read of a truncated, bit-flipped, spliced or garbled file either works or
raises the project's one-line FacetrackError; never another exception, a hang, NaN or garbage numbers.

Files: the face model (with and without its checksum), each weights file (with and without SHA256SUMS),
recordings (every surviving record must be one that was written) and a video.
"""

from __future__ import annotations

import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facetrack.errors import FacetrackError

FUZZ = settings(max_examples=12, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@st.composite
def damage(draw) -> tuple[str, float, float, int]:
    """(kind, where, extent, seed): where and extent are fractions of the file."""
    kind = draw(st.sampled_from(["truncate", "flip", "garble", "splice"]))
    return kind, draw(st.floats(0.0, 1.0)), draw(st.floats(0.0, 0.3)), draw(st.integers(0, 2**31 - 1))


def damaged(data: bytes, how: tuple[str, float, float, int]) -> bytes:
    kind, where, extent, seed = how
    rng = np.random.default_rng(seed)
    n = len(data)
    at = min(int(where * n), n - 1)
    size = max(1, int(extent * n))
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[:at])
    if kind == "flip":
        for p in rng.integers(at, n, size=min(size, 64)):
            b[p] ^= 1 << int(rng.integers(0, 8))
        return bytes(b)
    if kind == "garble":
        end = min(n, at + size)
        b[at:end] = rng.integers(0, 256, end - at, np.uint8).tobytes()
        return bytes(b)
    src = int(rng.integers(0, n))  # splice: a chunk of the file copied over another place
    chunk = b[src : src + size]
    return bytes(b[:at] + chunk + b[at + len(chunk):]) if rng.uniform() < 0.5 else bytes(b[:at] + chunk + b[at:])


@contextmanager
def time_limit(seconds: int):
    """A read that hangs fails the test instead of the suite."""
    def stop(*_):
        raise TimeoutError(f"no answer in {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_line(e: FacetrackError) -> None:
    assert "\n" not in str(e) and len(str(e)) < 400


# -- the face model ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("checksum", [True, False], ids=["with-sha256", "without"])
@FUZZ
@given(how=damage())
def test_damaged_model_file(model_file: Path, tmp_path: Path, checksum: bool, how) -> None:
    from facetrack.model.facemodel import FaceModel

    path = tmp_path / "m.npz"
    path.write_bytes(damaged(model_file.read_bytes(), how))
    side = model_file.with_name(model_file.name + ".sha256")
    if checksum:
        shutil.copyfile(side, path.with_name("m.npz.sha256"))
        (path.with_name("m.npz.sha256")).write_text(side.read_text().replace(model_file.name, "m.npz"))
    else:
        path.with_name("m.npz.sha256").unlink(missing_ok=True)
    with time_limit(60):
        try:
            face = FaceModel.load(path)
        except FacetrackError as e:
            one_line(e)
            return
    assert not checksum or path.read_bytes() == model_file.read_bytes()  # with the checksum, only an intact file
    assert np.isfinite(face.mean).all() and face.triangles.max() < face.n_vertices


# -- weights files ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights_copy(weights: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w") / "weights"
    shutil.copytree(weights, out)
    return out


@pytest.mark.parametrize("name", ["encoder.pt", "correctives.pt", "reflectance.npz", "encoder.onnx",
                                  "encoder.int8.onnx"])
@pytest.mark.parametrize("manifest", [True, False], ids=["with-SHA256SUMS", "without"])
@settings(FUZZ, max_examples=5)
@given(how=damage())
def test_damaged_weights_file(weights_copy: Path, face, tmp_path: Path, name: str, manifest: bool, how) -> None:
    from facetrack.net.runtime import make_backend
    from facetrack.net.weights import load_weights

    folder = tmp_path / "w"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for f in weights_copy.iterdir():
        if f.name != "SHA256SUMS" or manifest:
            (folder / f.name).symlink_to(f)
    (folder / name).unlink()
    (folder / name).write_bytes(damaged((weights_copy / name).read_bytes(), how))
    with time_limit(120):
        try:
            w = load_weights(folder, face)
            backend = make_backend(w, "onnx-int8" if name == "encoder.int8.onnx" else "onnx")
        except FacetrackError as e:
            one_line(e)
            return
    assert not manifest or (folder / name).read_bytes() == (weights_copy / name).read_bytes()
    out = backend(np.zeros((1, 240, 240, 3), np.uint8))
    assert out.shape == (1, w.model.layout.size)


# -- recordings --------------------------------------------------------------------------------------------
class Original:
    """A file's bytes and what was written into it (a short repr for hypothesis's failure reports)."""

    def __init__(self, data: bytes, values: np.ndarray | None = None) -> None:
        self.data, self.values = data, values

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes>"


@pytest.fixture(scope="module")
def recording_bytes(tmp_path_factory) -> Original:
    from facetrack.io.recording import Recorder
    from facetrack.model.layout import ParamLayout
    from facetrack.vision.crop import CropBox

    layout = ParamLayout(n_id=6, n_exp=5, n_refl=4, n_cg=3, n_cr=3)
    rng = np.random.default_rng(1)
    xs = rng.normal(0, 0.3, (40, layout.size)).astype(np.float32)
    xs[:, layout.slices()["trans"]] = [0, 0, -115]
    path = tmp_path_factory.mktemp("rec") / "r.ftrec"
    with Recorder(path, layout, [f"s{k}" for k in range(5)], fps=30.0) as rec:
        for i, x in enumerate(xs):
            rec.write(i / 30, i, x, {"base": 0.1, "final": 0.08}, CropBox(320, 240, 200), (640, 480))
    return Original(path.read_bytes(), xs)


@settings(FUZZ, max_examples=60)
@given(how=damage())
def test_damaged_recording(recording_bytes, tmp_path: Path, how) -> None:
    """Each record that survives is exactly one that was written (the CRC), at its own frame index, in order."""
    from facetrack.io.exports import export_csv
    from facetrack.io.recording import read_recording

    data, xs = recording_bytes.data, recording_bytes.values
    path = tmp_path / "d.ftrec"
    path.write_bytes(damaged(data, how))
    with time_limit(30):
        try:
            rec = read_recording(path)
        except FacetrackError as e:
            one_line(e)
            return
    assert len(rec) <= 40 and (np.diff(rec.frame_index) > 0).all()
    for k, i in enumerate(rec.frame_index):
        assert 0 <= i < 40 and rec.timestamp[k] == pytest.approx(i / 30)
        assert np.array_equal(rec.values["expression"][k], xs[i, 6:11])
    export_csv(rec, tmp_path / "d.csv", np.eye(3))


# -- videos ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video_bytes(shared_dir: Path, tmp_path_factory) -> Original:
    """A 2 s clip of a shared video re-encoded small (MPEG-4 part 2 in .mp4)."""
    src = cv2.VideoCapture(str(shared_dir / "videos" / "liveportrait_d0.mp4"))
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (256, 256))
    for _ in range(50):
        ok, frame = src.read()
        if not ok:
            break
        out.write(cv2.resize(frame, (256, 256)))
    out.release()
    src.release()
    return Original(path.read_bytes())


@settings(FUZZ, max_examples=30)
@given(how=damage())
def test_damaged_video(video_bytes: Original, tmp_path: Path, how) -> None:
    """Opening fails with one line, or frames come out whole; frames lost before the end are reported."""
    from facetrack.io.sources import open_source

    path = tmp_path / "d.mp4"
    path.write_bytes(damaged(video_bytes.data, how))
    with time_limit(60):
        try:
            source = open_source(str(path))
            frames = [f.rgb for f in source]
        except FacetrackError as e:
            one_line(e)
            return
    assert frames and all(f.dtype == np.uint8 and f.ndim == 3 and f.shape[2] == 3 for f in frames)
    if source.expected and len(frames) < source.expected - 2:
        assert "could be decoded" in source.problems
