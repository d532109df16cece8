"""`facetrack eval synthetic` end to end on a few faces with the shipped weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrack import paths
from facetrack.cli import main


def test_eval_synthetic_report(model_file: Path, shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture) -> None:
    if not (paths.weights_dir() / "encoder.pt").is_file():
        pytest.skip("no trained weights in weights/")
    monkeypatch.setenv("FACETRACK_HOME", str(tmp_path / "home"))
    out = tmp_path / "report"
    assert main(["eval", "synthetic", "--n", "6", "--model", str(model_file), "--out", str(out),
                 "--backgrounds", str(shared_dir / "faces" / "utkface")]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["faces"] == 6 and 0 < report["found"] <= 6
    for level in ("base", "final"):
        assert 0 < report["vertex_error_mm"][level]["mean"] < 20  # millimetres, after similarity alignment
    assert 0 <= report["rotation_error_deg"]["mean"] < 90
    assert "| vertex_error_mm base mean |" in (out / "report.md").read_text()
    assert "faces found" in capsys.readouterr().out
    # The set is cached: a second run reuses the same rendered faces.
    assert (tmp_path / "home" / "eval" / "synthetic-seed0-n6" / "synth.npz").is_file()
