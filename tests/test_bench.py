"""`facetrack bench`: every backend this machine has is measured, against the reference, into JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facetrack.cli import main
from facetrack.evaluation.bench import time_ms, time_paired


def test_time_ms_measures_wall_time() -> None:
    ms = time_ms(lambda: time.sleep(0.02), min_runs=3, min_seconds=0.0, warmup=0)
    assert 20 <= ms < 200


def test_time_paired_alternates_with_the_reference() -> None:
    """Each pair holds the function's time and the reference's, timed next to each other."""
    pairs = time_paired(lambda: time.sleep(0.01), pairs=3, runs=2)
    assert len(pairs) == 3
    for ms, ref in pairs:
        assert 10 <= ms < 100 and ref > 0


def test_bench_writes_every_backend(weights: Path, model_file: Path, shared_dir: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.json"
    video = shared_dir / "videos" / "liveportrait_d0.mp4"
    assert main(["bench", "--video", str(video), "--frames", "8", "--out", str(out), "--model", str(model_file)]) == 0
    doc = json.loads(out.read_text())
    assert doc["reference"]["ms"] > 0 and doc["machine"]["torch_threads"] >= 1
    samples = doc["reference"]["samples_ms"]  # timed before and after each group of rows; ratios use the median
    assert len(samples) == 6 and doc["reference"]["ms"] == pytest.approx(float(np.median(samples)))
    encoders = {(r["backend"], r["batch"]) for r in doc["rows"] if r["part"] == "encoder"}
    expected = {"torch-cpu", "torchscript-cpu", "onnxruntime-cpu", "onnxruntime-int8-cpu"} | (
        {"torch-cuda-fp32", "torch-cuda-fp16"} if torch.cuda.is_available() else set())
    assert encoders == {(b, n) for b in expected for n in (1, 32)}
    for r in doc["rows"]:
        assert r["ms_per_frame"] > 0 and r["hz"] == pytest.approx(1e3 / r["ms_per_frame"])
        if "paired_ratios" in r:  # timed in turn with the reference: the median of the pairs' ratios
            assert r["ratio_to_reference"] == pytest.approx(float(np.median(r["paired_ratios"])))
            assert len(r["paired_ratios"]) == len(r["paired_reference_ms"]) >= 3
            assert min(r["paired_reference_ms"]) > 0
        else:
            assert r["ratio_to_reference"] == pytest.approx(r["ms_per_frame"] / doc["reference"]["ms"])
    paired = {r["part"].split(",")[0].split(" (")[0] for r in doc["rows"] if "paired_ratios" in r}
    assert {"end to end", "end to end with VMC streaming on"} <= paired
    end = [r for r in doc["rows"] if r["part"].startswith("end to end, run")]
    assert len(end) == 1 and "8 frames" in end[0]["part"] and set(end[0]["stages_ms"]) == {
        "detect_landmarks", "encoder", "fit", "model"}
    streaming = [r for r in doc["rows"] if r["part"].startswith("end to end with VMC streaming")]
    assert len(streaming) == 1 and streaming[0]["bundles_sent"] == 3 * 8 and streaming[0]["ratio_to_streaming_off"] > 0
    window = [r for r in doc["rows"] if r["part"].startswith("window pipeline")]
    staged = "MediaPipe" in doc["front_end"]  # with MediaPipe, also the window with a landmark thread
    assert [r["landmark_thread"] for r in window] == ([False, True] if staged else [False])
    assert sum("(as the window runs here)" in r["part"] for r in window) == 1
    for r in window:
        assert r["latency_ms"]["median"] > 0 and r["work_ms"] > 0 and {"packet", "upload", "model"} <= set(
            r["stages_ms"])
    steps = [r for r in doc["rows"] if r["part"].startswith("reconstruction step") and "appearance" not in r["part"]]
    appearance = [r for r in doc["rows"] if r["part"].startswith("reconstruction step") and "appearance" in r["part"]]
    assert len(appearance) == 2 and appearance[0]["ms_per_frame"] > appearance[1]["ms_per_frame"]  # update > lighting
    assert len(steps) == 3 and steps[0]["ms_per_frame"] < steps[2]["ms_per_frame"]  # landmarks only is cheapest
    assert any(r["part"].startswith("image formation") for r in doc["rows"])
    if "MediaPipe" in doc["front_end"]:  # the fit on the clip's frames after calibration (d0: 78 - 40 of them)
        fit = [r for r in doc["rows"] if r["part"].startswith("per-frame fit")]
        assert len(fit) == 1 and "38 stream frames" in fit[0]["part"] and fit[0]["iterations"] >= 1
        assert {"per-frame fit", "MediaPipe face landmarker", "MediaPipe landmarks in a stream"} <= paired
        assert "rows marked * give the median ratio" in out.with_suffix(".md").read_text()
    printed = capsys.readouterr().out
    assert "| encoder | onnxruntime-cpu | 32 |" in printed
    assert out.with_suffix(".md").read_text().startswith("# facetrack bench")


def test_bench_missing_video_is_one_line_error(weights: Path, model_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "--video", str(tmp_path / "nope.mp4"), "--model", str(model_file)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
