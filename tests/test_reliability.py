"""Damaged inputs through the real command line: one line saying what is wrong, the right exit code, and
nothing lost (README: Reliability)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrack.cli import main


def _clip(shared_dir: Path, path: Path, frames: int = 40) -> Path:
    src = cv2.VideoCapture(str(shared_dir / "videos" / "liveportrait_d0.mp4"))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (256, 256))
    for _ in range(frames):
        ok, frame = src.read()
        out.write(cv2.resize(frame, (256, 256)))
    out.release()
    src.release()
    return path


def test_video_damaged_in_the_middle_says_what_it_lost(shared_dir: Path, model_file: Path, tmp_path: Path,
                                                       capsys) -> None:
    video = _clip(shared_dir, tmp_path / "clip.mp4")
    data = bytearray(video.read_bytes())
    mid = len(data) // 2
    data[mid : mid + len(data) // 5] = np.random.default_rng(0).integers(0, 256, len(data) // 5, np.uint8).tobytes()
    video.write_bytes(bytes(data))
    assert main(["run", "--no-gui", "--source", str(video), "--model", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "of 40 frames could be decoded: the video is damaged from frame" in out and "frames lost" in out


def test_folder_says_what_it_skipped(shared_dir: Path, model_file: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for k, src in enumerate(sorted((shared_dir / "faces" / "utkface").iterdir())[:2]):
        shutil.copyfile(src, folder / f"{k}.jpg")
    (folder / "notes.txt").write_text("not a photo")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "fake.png").write_bytes(b"this is no png")
    assert main(["run", "--no-gui", "--source", str(folder), "--model", str(model_file), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "skipped 3 files (" in out and "1 not an image file" in out and "1 empty file" in out
    assert "1 not a readable image" in out
    assert f"skipped {folder / 'notes.txt'}: not an image file" in out and "2 frames" in out


@pytest.mark.parametrize("argv", [["run", "--no-gui", "--max-frames", "-3"], ["run", "--max-frames", "0"],
                                  ["bench", "--frames", "0"], ["eval", "synthetic", "--n", "-1"],
                                  ["soak", "x.mp4", "--minutes", "nan"], ["run", "--face", "0"],
                                  ["run", "--fov", "180"], ["run", "--fov", "0"]])
def test_bad_numbers_are_refused(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and ("must be" in err or "not a number" in err)


def test_damaged_model_file_through_the_cli(model_file: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "m.npz"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    shutil.copyfile(model_file.with_name(model_file.name + ".sha256"), tmp_path / "m.npz.sha256")
    (tmp_path / "m.npz.sha256").write_text((tmp_path / "m.npz.sha256").read_text().replace(model_file.name, "m.npz"))
    assert main(["model", "info", "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is damaged" in err and "facetrack model build" in err


def test_damaged_weights_file_through_the_cli(weights: Path, model_file: Path, shared_dir: Path, tmp_path: Path,
                                              capsys) -> None:
    folder = tmp_path / "w"
    shutil.copytree(weights, folder)
    onnx = folder / "encoder.int8.onnx"  # the encoder the app runs on a CPU
    onnx.write_bytes(onnx.read_bytes()[: onnx.stat().st_size // 2])  # an interrupted download
    assert main(["run", "--no-gui", "--source", str(shared_dir / "videos" / "liveportrait_d0.mp4"), "--weights",
                 str(folder), "--model", str(model_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "encoder.int8.onnx is damaged" in err and "git checkout weights/" in err


def test_sigterm_closes_the_recording_and_prints_the_summary(shared_dir: Path, model_file: Path,
                                                             tmp_path: Path) -> None:
    from facetrack.io.recording import read_recording

    rec = tmp_path / "t.ftrec"
    p = subprocess.Popen([sys.executable, "-m", "facetrack.cli", "run", "--no-gui", "--source",
                          str(shared_dir / "videos" / "liveportrait_d14.mp4"), "--record", str(rec), "--model",
                          str(model_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 60
    while time.monotonic() < end and (not rec.exists() or rec.stat().st_size < 20_000):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "interrupted: stopped cleanly" in out and "frames recorded to" in out and " frames, " in out
    back = read_recording(rec)
    assert len(back) > 0 and back.damaged == 0 and not back.truncated
