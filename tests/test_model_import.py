"""ICT-FaceKit import: counts, tables, file format and the one-line errors for bad input."""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest

from facetrack.cli import main
from facetrack.errors import FacetrackError
from facetrack.model.facemodel import FaceModel
from facetrack.model.ict import LANDMARKS_68, build_from_ict
from facetrack.model.obj import read_obj


def test_info_prints_counts(model_file: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["model", "info", "--model", str(model_file)]) == 0
    out = capsys.readouterr().out
    for line in ("vertices                     9409", "triangles                    18460",
                 "identity_modes               100", "expression_shapes            53",
                 "landmarks                    68"):
        assert line in out
    assert "jawOpen" in out and "eyeBlink_L" in out and "mouthSmile_L" in out


def test_model_contents(face: FaceModel) -> None:
    V = face.n_vertices
    assert face.mean.shape == (V, 3) and face.id_basis.shape == (100, V, 3) and face.exp_basis.shape == (53, V, 3)
    assert tuple(face.landmarks) == LANDMARKS_68
    assert face.triangles.max() == V - 1 and face.triangles.min() == 0
    # ICT units are centimetres: the jaw is about 15 cm wide, landmarks 0 and 16 mirror each other.
    jaw = face.mean[face.landmarks[16]] - face.mean[face.landmarks[0]]
    assert 12 < jaw[0] < 18 and abs(jaw[1]) < 0.1
    # Every contour candidate set holds its default landmark and at least 3 rows of vertices.
    for i in range(17):
        cands = face.contour_candidates(i)
        assert face.landmarks[i] in cands and len(cands) >= 12
    # Skin mask: cheeks and forehead yes; lips, eyes, nose tip's nostrils no.
    assert 1000 < face.skin_mask.sum() < 0.5 * V
    assert not face.skin_mask[face.landmarks[48:68]].any()
    assert not face.skin_mask[face.landmarks[36:48]].any()
    # 1-rings are symmetric (i in ring(j) iff j in ring(i)) and a regular mesh has about 6 neighbours.
    rows = np.repeat(np.arange(V), np.diff(face.ring_ptr))
    pairs = set(zip(rows.tolist(), face.ring_idx.tolist(), strict=True))
    assert all((j, i) in pairs for i, j in list(pairs)[:5000])
    assert 5.5 < np.diff(face.ring_ptr).mean() < 6.5
    # Normals of the mean face point outwards: the nose tip's normal faces the viewer (+z).
    assert face.photo_mask[face.landmarks[30]] and face.photo_mask.sum() > 0.8 * V
    assert not face.refl_learned and np.all(face.refl_basis == 0)


def test_plain_obj_reads_like_xz(ict_dir: Path, tmp_path: Path) -> None:
    src = ict_dir / "jawOpen.obj.xz"
    plain = tmp_path / "jawOpen.obj"
    plain.write_bytes(lzma.decompress(src.read_bytes()))
    assert np.array_equal(read_obj(plain).vertices, read_obj(src).vertices)


def _fake_folder(ict_dir: Path, tmp_path: Path, broken: str, content: bytes) -> Path:
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    for f in ict_dir.iterdir():
        (folder / f.name).symlink_to(f)
    (folder / broken).unlink()
    (folder / broken).write_bytes(content)
    return folder


@pytest.mark.parametrize("content, message", [
    (b"\xfd7zXZ\x00garbage", "corrupt OBJ file"),
    (lzma.compress(b"v 0 0 0\nv 1 1 1\n"), "wrong vertex count"),
])
def test_bad_obj_is_one_line_error_and_nothing_written(ict_dir: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture, content: bytes,
                                                        message: str) -> None:
    folder = _fake_folder(ict_dir, tmp_path, "identity007.obj.xz", content)
    out = tmp_path / "cache" / "model.npz"
    assert main(["model", "build", "--ict", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "identity007.obj.xz" in err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_missing_inputs(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FACETRACK_ICT", raising=False)
    assert main(["model", "build"]) == 2
    assert "FACETRACK_ICT" in capsys.readouterr().err
    assert main(["model", "build", "--ict", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(FacetrackError, match="missing file"):
        build_from_ict(tmp_path)
    monkeypatch.setenv("FACETRACK_HOME", str(tmp_path / "home"))
    assert main(["model", "info"]) == 2
    assert "facetrack model build" in capsys.readouterr().err


def test_corrupt_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(FacetrackError, match="damaged face model"):
        FaceModel.load(bad)


def test_save_load_round_trip(face: FaceModel, tmp_path: Path) -> None:
    face.save(tmp_path / "copy.npz")
    again = FaceModel.load(tmp_path / "copy.npz")
    assert np.array_equal(again.exp_basis, face.exp_basis) and list(again.exp_names) == list(face.exp_names)
    # no temporary file left; the checksum beside the model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.npz", "copy.npz.sha256"]
