"""`facetrack run --no-gui` and `facetrack reconstruct` with the shipped weights on shared data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrack.cli import main
from facetrack.io.recording import read_recording


def test_run_records_every_processed_frame(weights: Path, model_file: Path, shared_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    rec = tmp_path / "r.ftrec"
    video = shared_dir / "videos" / "liveportrait_d0.mp4"
    assert main(["run", "--source", str(video), "--no-gui", "--max-frames", "12", "--record", str(rec),
                 "--weights", str(weights), "--model", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "12 frames, 12 with a face" in out and "FPS" in out
    back = read_recording(rec)
    assert len(back) == 12 and list(back.frame_index) == list(range(12))
    assert np.all(back.values["photo_final"] < 0.5)


def test_reconstruct_outputs(weights: Path, model_file: Path, shared_dir: Path, tmp_path: Path) -> None:
    img = shared_dir / "aflw2000-sample" / "image00050.jpg"
    assert main(["reconstruct", str(img), "--out", str(tmp_path), "--weights", str(weights),
                 "--model", str(model_file)]) == 0
    d = tmp_path / img.stem
    params = json.loads((d / "params.json").read_text())
    assert set(params["params"]["rotation_degrees"]) == {"pitch", "yaw", "roll"}
    assert "jawOpen" in params["params"]["alpha_exp"]
    lm = np.array(json.loads((d / "landmarks.json").read_text())["landmarks_68"])
    h, w = cv2.imread(str(img)).shape[:2]
    assert lm.shape == (68, 2) and (lm > 0).all() and (lm[:, 0] < w).all() and (lm[:, 1] < h).all()
    mask = cv2.imread(str(d / "mask.png"), cv2.IMREAD_GRAYSCALE) > 127
    assert 0.05 < mask.mean() < 0.8
    assert mask[int(lm[30, 1]), int(lm[30, 0])]  # the nose tip is on the face mask
    assert (d / "mesh.obj").read_text().count("\nf ") == 18460


def test_bad_sources_are_one_line_errors(weights: Path, model_file: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    for source in (str(tmp_path / "missing.mp4"), str(broken), "7"):
        assert main(["run", "--source", source, "--no-gui", "--weights", str(weights),
                     "--model", str(model_file)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["run", "--source", str(broken), "--no-gui", "--weights", str(tmp_path),
                 "--model", str(model_file)]) == 2
    assert "missing weights file" in capsys.readouterr().err


def test_face_lost_holds_the_pose_and_reacquires(weights: Path, model_file: Path, shared_dir: Path,
                                                  tmp_path: Path) -> None:
    """A face that leaves (black frames) and comes back: every frame is recorded, the missing ones flagged
    and holding the last pose (no NaN), and tracking picks the face up again."""
    from facetrack.io.sources import open_source

    frames = [f.rgb for _, f in zip(range(16), open_source(str(shared_dir / "videos" / "liveportrait_d0.mp4")),
                                    strict=False)]
    video = tmp_path / "gap.avi"
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (w, h))
    for k in range(24):
        rgb = frames[k] if k < 8 else (np.zeros_like(frames[0]) if k < 16 else frames[k - 8])
        out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out.release()
    rec = tmp_path / "gap.ftrec"
    assert main(["run", "--source", str(video), "--no-gui", "--record", str(rec), "--weights", str(weights),
                 "--model", str(model_file)]) == 0
    back = read_recording(rec)
    present = back.values["face"][:, 0]
    assert len(back) == 24 and present[:8].all() and not present[9:16].any() and present[17:].all()
    expr = back.values["expression"]
    assert np.isfinite(expr).all() and np.allclose(expr[10], expr[15])  # held, not NaN


def test_landmarks_found_ahead_give_the_same_results(weights: Path, model_file: Path, shared_dir: Path,
                                                     landmarker: Path) -> None:
    """`frames_ahead` runs MediaPipe a frame ahead on a second thread and leaves choosing and cropping to the
    first: every frame's result must be the one that the frames give one at a time."""
    from facetrack.io.sources import open_source
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights
    from facetrack.render.reconstruction import NOTHING
    from facetrack.track.pipeline import Pipeline, frames_ahead
    from facetrack.track.tracker import Tracker

    w = load_weights(weights, FaceModel.load(model_file))
    video = str(shared_dir / "videos" / "liveportrait_d3.mp4")

    def results(ahead: bool) -> list:
        pipe = Pipeline(Tracker(w, landmarker=landmarker))
        frames = frames_ahead(pipe, open_source(video)) if ahead else ((f, None) for f in open_source(video))
        out = []
        for (frame, sighting), _ in zip(frames, range(20), strict=False):
            r = pipe(frame, NOTHING, sighting)
            out.append((r.x.copy(), (r.box.cx, r.box.cy, r.box.side), r.face.crop.copy()))
        return out

    one, two = results(False), results(True)
    assert len(one) == len(two) == 20
    for (xa, ba, ca), (xb, bb, cb) in zip(one, two, strict=True):
        assert np.array_equal(xa, xb) and ba == bb and np.array_equal(ca, cb)


def test_landmark_stage_hands_on_sighted_frames(weights: Path, model_file: Path, shared_dir: Path,
                                                landmarker: Path) -> None:
    """The window's landmark thread: frames that it hands on in order (none stale here: the reader keeps up)
    carry their sighting, and the rest of the pipeline on them gives exactly the result of the frames one at a
    time. A frame that MediaPipe cannot take is reported in one line and the stage goes on."""
    import threading
    import time

    from facetrack.io.sources import Frame, open_source
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights
    from facetrack.render.reconstruction import NOTHING
    from facetrack.track.pipeline import LandmarkStage, LatestFrame, Pipeline
    from facetrack.track.tracker import Tracker

    w = load_weights(weights, FaceModel.load(model_file))
    frames = [f for f, _ in zip(open_source(str(shared_dir / "videos" / "liveportrait_d3.mp4")), range(12),
                                strict=False)]
    one = Pipeline(Tracker(w, landmarker=landmarker))
    expected = [one(f, NOTHING).x.copy() for f in frames]

    staged = Pipeline(Tracker(w, landmarker=landmarker))
    inbox, outbox, errors = LatestFrame(), LatestFrame(), []
    stage = LandmarkStage(staged.tracker, inbox, outbox, errors.append)
    stage.start()
    stop, got = threading.Event(), []
    bad = Frame(frames[5].timestamp + 0.01, 99, np.zeros((4, 4, 7), np.uint8))  # no RGB image
    try:
        for f in [*frames[:6], bad, *frames[6:]]:
            assert inbox.put_when_taken((f, time.monotonic()), stop)
            deadline = time.monotonic() + 30
            while f is not bad and time.monotonic() < deadline:
                item = outbox.take()
                if item is not None:
                    got.append(item)
                    break
                time.sleep(0.001)
        time.sleep(0.2)
    finally:
        stage.stop()
    assert not stage.is_alive() and len(got) == 12 and outbox.dropped == 0
    assert len(errors) == 1 and errors[0].startswith("landmarks failed on frame 99:") and "\n" not in errors[0]
    for (frame, _, sighting), f, x in zip(got, frames, expected, strict=True):
        assert frame is f and sighting is not None and sighting.faces
        assert np.array_equal(staged(frame, NOTHING, sighting).x, x)


def test_landmark_stage_starts_just_in_time(weights: Path, model_file: Path, shared_dir: Path,
                                            landmarker: Path) -> None:
    """Inference slower than the landmarker (0.15 s a frame here): the stage learns to start each sighting
    late, so that inference gets a frame found just before it was free (captured well under one inference
    period ago) rather than one that waited a whole period; and MediaPipe works only on frames that
    inference takes."""
    import dataclasses
    import threading
    import time

    from facetrack.io.sources import open_source
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights
    from facetrack.track.pipeline import LandmarkStage, LatestFrame
    from facetrack.track.tracker import Tracker

    tracker = Tracker(load_weights(weights, FaceModel.load(model_file)), landmarker=landmarker)
    clip = [f for f, _ in zip(open_source(str(shared_dir / "videos" / "liveportrait_d3.mp4")), range(12),
                              strict=False)]
    inbox, outbox, stop = LatestFrame(), LatestFrame(), threading.Event()

    def capture() -> None:  # 100 frames a second, the clip over and over
        k = 0
        while not stop.is_set():
            inbox.put((dataclasses.replace(clip[k % len(clip)], timestamp=k / 100, index=k), time.monotonic()))
            k += 1
            time.sleep(0.01)

    sightings = 0

    def sight(rgb, timestamp=None):
        nonlocal sightings
        sightings += 1
        return Tracker.sight(tracker, rgb, timestamp=timestamp)

    tracker.sight = sight
    stage = LandmarkStage(tracker, inbox, outbox)
    feeder = threading.Thread(target=capture, daemon=True)
    feeder.start()
    stage.start()
    ages = []
    try:
        while len(ages) < 25:
            item = outbox.take()
            if item is None:
                time.sleep(0.002)
                continue
            ages.append(time.monotonic() - item[1])
            assert item[2] is not None and item[2].faces
            time.sleep(0.15)  # inference
        lead, seen = stage.lead, sightings
        stop.set()
        feeder.join(2)
        # The capture pauses (a slow camera): a frame that comes later goes through at once, not after a lead.
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            outbox.take()
            time.sleep(0.002)
        k = 10_000
        sent = time.monotonic()
        inbox.put((dataclasses.replace(clip[0], timestamp=k / 100, index=k), sent))
        item = None
        while item is None and time.monotonic() < sent + 5:
            item = outbox.take()
            time.sleep(0.001)
        late = time.monotonic() - sent
    finally:
        stop.set()
        stage.stop()
        feeder.join(2)
    assert lead > 0.05
    assert float(np.median(ages[-10:])) < 0.1, ages
    assert seen <= len(ages) + 1
    assert item is not None and item[0].index == k and late < item[2].ms / 1e3 + 0.03, (late, item[2].ms)


def test_mailbox_drops_stale_frames_or_waits_for_the_reader() -> None:
    """Live frames: the newest wins and stale ones are counted as dropped. A recording's frames
    (put_when_taken, used by playback): a slow reader gets every one, in order; a stop ends the wait."""
    import threading
    import time

    from facetrack.track.pipeline import LatestFrame

    box = LatestFrame()
    for i in range(3):
        box.put(i)
    assert box.take() == 2 and box.dropped == 2 and box.take() is None

    stop, got = threading.Event(), []
    writer = threading.Thread(target=lambda: [box.put_when_taken(i, stop) for i in range(20)])
    writer.start()
    while len(got) < 20:
        time.sleep(0.003)  # a reader slower than the writer
        item = box.take()
        if item is not None:
            got.append(item)
    writer.join(5)
    assert got == list(range(20)) and box.dropped == 2
    box.put("held")
    stop.set()
    assert box.put_when_taken("late", stop) is False and box.take() == "held"


def test_relearning_the_resting_face_between_frames(weights: Path, model_file: Path, shared_dir: Path,
                                                    landmarker: Path) -> None:
    """Pipeline.relearn (the window's C) between two frames of a stream: the next frame calibrates the person
    again (FitInfo.calibrating, a fresh identity), from the last frame's pose, so the head does not jump."""
    from facetrack.io.sources import open_source
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights
    from facetrack.render.reconstruction import NOTHING
    from facetrack.track.pipeline import Pipeline
    from facetrack.track.tracker import Tracker

    pipe = Pipeline(Tracker(load_weights(weights, FaceModel.load(model_file)), landmarker=landmarker))
    calibration = pipe.tracker.fitter.cfg.calibration_frames
    frames = iter(open_source(str(shared_dir / "videos" / "liveportrait_d13.mp4")))
    results = [pipe(f, NOTHING) for f, _ in zip(frames, range(calibration + 2), strict=False)]
    assert results[0].fit.calibrating and not results[-1].fit.calibrating
    assert pipe.tracker.fitter.state.bias is not None
    pipe.relearn()
    assert pipe.relearning
    again = pipe(next(frames), NOTHING)
    assert not pipe.relearning and again.fit.calibrating and pipe.tracker.fitter.state.bias is None
    turn = np.degrees(np.abs(again.recon.params["rot"] - results[-1].recon.params["rot"])).max()
    assert turn < 2.0, turn
