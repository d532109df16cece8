"""The .ftrec recording format: round trip, crash safety, full disk, CSV export."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from facetrack.cli import main
from facetrack.errors import FacetrackError
from facetrack.io.recording import Recorder, read_recording
from facetrack.model.layout import ParamLayout
from facetrack.render.camera import euler_to_matrix
from facetrack.vision.crop import CropBox

LAYOUT = ParamLayout(n_cg=4, n_cr=4)
NAMES = [f"shape{i}" for i in range(LAYOUT.n_exp)]
BOX, SIZE = CropBox(320.0, 240.0, 200.0), (640, 480)


def _frames(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, LAYOUT.size)).astype(np.float32) * 0.3


def test_round_trip(tmp_path: Path) -> None:
    xs = _frames(7)
    with Recorder(tmp_path / "a.ftrec", LAYOUT, NAMES, source="test") as rec:
        for i, x in enumerate(xs):
            rec.write(i / 30, i, x, {'base': 0.1, 'final': 0.05}, BOX, SIZE)
    back = read_recording(tmp_path / "a.ftrec")
    assert len(back) == 7 and back.header["expression_names"] == NAMES
    sl = LAYOUT.slices()
    assert np.allclose(back.values["expression"], xs[:, sl["alpha_exp"]], atol=1e-6)
    assert np.allclose(back.values["translation"], xs[:, sl["trans"]], atol=1e-6)
    assert np.allclose(back.values["gamma"], xs[:, sl["gamma"]], atol=1e-6)
    # The quaternion encodes the same rotation as the Euler angles.
    for x, q in zip(xs, back.values["quaternion"], strict=True):
        R = euler_to_matrix(torch.tensor(x[sl["rot"]], dtype=torch.float64)).numpy()
        w, a, b, c = q
        Rq = np.array([[1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)],
                       [2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)],
                       [2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)]])
        assert np.allclose(R, Rq, atol=1e-5)
    assert np.allclose(back.timestamp, np.arange(7) / 30) and list(back.frame_index) == list(range(7))
    assert np.allclose(back.values["crop_box"], [320, 240, 200]) and np.allclose(back.values["frame_size"], SIZE)
    assert back.header["version"] == 4 and back.damaged == 0 and not back.truncated
    assert np.allclose(back.values["reflectance"], xs[:, sl["beta"]], atol=1e-6)
    x_back = back.params(LAYOUT)  # everything the model needs comes back, the rotation through the quaternion
    for name in ("alpha_id", "alpha_exp", "beta", "delta_g", "delta_r", "trans", "gamma"):
        assert np.allclose(x_back[:, sl[name]], xs[:, sl[name]], atol=1e-6), name


def test_recordings_replay_with_grown_correctives_and_refuse_other_models(tmp_path: Path) -> None:
    """A recording keeps playing when the weights' correctives grew since (the new coefficients are 0, as the
    grown encoder says); any other difference in sizes is a one-line error, not a garbled replay."""
    xs = _frames(3)
    with Recorder(tmp_path / "a.ftrec", LAYOUT, NAMES) as rec:
        for i, x in enumerate(xs):
            rec.write(i / 30, i, x, {}, BOX, SIZE)
    back = read_recording(tmp_path / "a.ftrec")
    grown = ParamLayout(n_cg=4, n_cr=6)
    x = back.params(grown)
    sl, gsl = LAYOUT.slices(), grown.slices()
    assert np.allclose(x[:, gsl["delta_r"]][:, :4], xs[:, sl["delta_r"]], atol=1e-6)
    assert (x[:, gsl["delta_r"]][:, 4:] == 0).all()
    assert np.allclose(x[:, gsl["gamma"]], xs[:, sl["gamma"]], atol=1e-6)
    with pytest.raises(FacetrackError, match="replay it with the weights it was recorded with"):
        back.params(ParamLayout(n_cg=4, n_cr=2))
    with pytest.raises(FacetrackError, match="100 alpha_id values, the model 50"):
        back.params(ParamLayout(n_id=50, n_cg=4, n_cr=4))


def test_version_1_files_still_read(tmp_path: Path) -> None:
    """A v1 file (no crop box, no frame size) reads, replays with a default box, and exports."""
    import json
    import struct

    from facetrack.io.recording import MAGIC
    from facetrack.io.sources import open_source

    fields = [("quaternion", 4), ("translation", 3), ("identity", LAYOUT.n_id), ("expression", LAYOUT.n_exp),
              ("delta_g", 4), ("delta_r", 4), ("gamma", 27), ("photo_base", 1), ("photo_final", 1)]
    blob = json.dumps({"version": 1, "fields": fields, "expression_names": NAMES, "fps": 30.0}).encode()
    width = sum(n for _, n in fields)
    values = np.zeros(width, np.float32)
    values[0] = 1.0  # identity quaternion
    values[6] = -115.0
    body = b"".join(struct.pack("<dq", i / 30, i) + values.tobytes() for i in range(3))
    path = tmp_path / "v1.ftrec"
    path.write_bytes(MAGIC + struct.pack("<I", len(blob)) + blob + body)
    rec = read_recording(path)
    assert len(rec) == 3 and "crop_box" not in rec.values
    frames = list(open_source(str(path), LAYOUT))
    assert len(frames) == 3 and frames[0].box is None and frames[1].x[LAYOUT.slices()["trans"]][2] == -115.0
    assert (frames[0].x[LAYOUT.slices()["beta"]] == 0).all()  # no reflectance field before version 4: the mean
    assert main(["export", str(path), "--csv", str(tmp_path / "v1.csv")]) == 0


def test_truncated_last_frame_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "crash.ftrec"
    rec = Recorder(path, LAYOUT, NAMES)
    for i, x in enumerate(_frames(5)):
        rec.write(float(i), i, x, {'base': 0.1, 'final': 0.1}, BOX, SIZE)
    rec.close()
    path.write_bytes(path.read_bytes()[:-10])  # killed while writing the last record
    back = read_recording(path)
    assert len(back) == 4 and back.truncated and back.damaged == 0


def test_damaged_records_are_skipped_and_counted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Bytes garbled in the middle: the records they hit fail their CRC and are skipped, never exported as
    numbers; the others read exactly; export says how many it skipped."""
    from facetrack.io.recording import MAGIC

    path = tmp_path / "garbled.ftrec"
    xs = _frames(20)
    with Recorder(path, LAYOUT, NAMES) as rec:
        for i, x in enumerate(xs):
            rec.write(i / 30, i, x, {'base': 0.1, 'final': 0.1}, BOX, SIZE)
    data = bytearray(path.read_bytes())
    body = len(MAGIC) + 4 + int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "little")
    size = (len(data) - body) // 20  # 20 equal records after the header
    start = body + 8 * size + 7  # inside record 8, on into record 9
    data[start : start + size] = np.random.default_rng(0).integers(0, 256, size, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    back = read_recording(path)
    assert back.damaged == 2 and len(back) == 18
    assert list(back.frame_index) == [i for i in range(20) if i not in (8, 9)]
    sl = LAYOUT.slices()
    keep = [i for i in range(20) if i not in (8, 9)]
    assert np.allclose(back.values["expression"], xs[keep][:, sl["alpha_exp"]], atol=1e-6)
    assert main(["export", str(path), "--csv", str(tmp_path / "g.csv")]) == 0
    assert "2 damaged records skipped" in capsys.readouterr().out
    table = np.loadtxt(tmp_path / "g.csv", delimiter=",", skiprows=1)
    assert table.shape[0] == 18 and (table[:, 1] >= 0).all() and (table[:, 1] < 20).all()


def test_damaged_header_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "h.ftrec"
    with Recorder(path, LAYOUT, NAMES) as rec:
        rec.write(0.0, 0, _frames(1)[0], {}, BOX, SIZE)
    data = path.read_bytes().replace(b'"fields"', b'"fiel\xffs"')
    path.write_bytes(data)
    with pytest.raises(FacetrackError, match="damaged recording header"):
        read_recording(path)


def test_full_disk_keeps_frames(tmp_path: Path) -> None:
    path = tmp_path / "full.ftrec"
    rec = Recorder(path, LAYOUT, NAMES)
    xs = _frames(3)
    rec.write(0.0, 0, xs[0], {'base': 0.1, 'final': 0.1}, BOX, SIZE)
    rec.write(1.0, 1, xs[1], {'base': 0.1, 'final': 0.1}, BOX, SIZE)

    def no_space(data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    rec._write = no_space
    with pytest.raises(FacetrackError, match="recording stopped after 2 frames.*No space left"):
        rec.write(2.0, 2, xs[2], {'base': 0.1, 'final': 0.1}, BOX, SIZE)
    assert len(read_recording(path)) == 2
    with pytest.raises(FacetrackError, match="cannot start recording"):
        Recorder(Path("/dev/full"), LAYOUT, NAMES)


def test_csv_export(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with Recorder(tmp_path / "a.ftrec", LAYOUT, NAMES) as rec:
        for i, x in enumerate(_frames(3)):
            rec.write(i * 0.5, i, x, {'base': 0.2, 'final': 0.1}, BOX, SIZE)
    assert main(["export", str(tmp_path / "a.ftrec"), "--csv", str(tmp_path / "a.csv")]) == 0
    header = (tmp_path / "a.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["timestamp", "frame", "qw", "qx", "qy"] and "shape7" in header and "photo_final" in header
    table = np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=1)
    assert table.shape == (3, len(header)) and math.isclose(table[2, 0], 1.0)
    # after the recorded fields, the head pose in the source camera, as streams sent it
    from facetrack.io.exports import HEAD_COLUMNS
    from facetrack.model.correspondence import Correspondence
    from facetrack.render.camera import matrix_to_euler
    from facetrack.track.head import recorded_poses

    assert header[-6:] == HEAD_COLUMNS
    R, t = recorded_poses(read_recording(tmp_path / "a.ftrec"), Correspondence.load().head_frame)
    degrees = np.degrees(matrix_to_euler(torch.from_numpy(R)).numpy())
    assert np.allclose(table[:, -6:-3], degrees, atol=1e-4) and np.allclose(table[:, -3:], t, atol=1e-4)
    (tmp_path / "bad.ftrec").write_bytes(b"hello")
    assert main(["export", str(tmp_path / "bad.ftrec"), "--csv", str(tmp_path / "b.csv")]) == 2
    assert "not a facetrack recording" in capsys.readouterr().err
