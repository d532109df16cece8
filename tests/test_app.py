"""The window under Xvfb (pytest-xvfb starts it): real capture and inference threads on a shared video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from facetrack import paths  # noqa: E402
from facetrack.app.main import ensure_app  # noqa: E402
from facetrack.io.recording import read_recording  # noqa: E402
from facetrack.model.facemodel import FaceModel  # noqa: E402
from facetrack.net.weights import load_weights  # noqa: E402
from facetrack.track.pipeline import Pipeline  # noqa: E402
from facetrack.track.tracker import Tracker  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "out"


@pytest.fixture(scope="module")
def pipeline(model_file: Path) -> Pipeline:
    folder = paths.weights_dir()
    if not (folder / "encoder.pt").is_file():
        pytest.skip("no trained weights in weights/")
    return Pipeline(Tracker(load_weights(folder, FaceModel.load(model_file))))


def _pixels(viewport) -> np.ndarray:
    img = viewport.grabFramebuffer().convertToFormat(viewport.grabFramebuffer().Format.Format_RGB888)
    w, h = img.width(), img.height()
    return np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, -1)[:, : w * 3] \
        .reshape(h, w, 3).copy()


def test_window_on_video(qtbot, pipeline: Pipeline, shared_dir: Path, tmp_path: Path, monkeypatch) -> None:
    ensure_app()
    from facetrack.app.window import MainWindow

    rec_path = tmp_path / "session.ftrec"
    win = MainWindow(pipeline, str(shared_dir / "videos" / "liveportrait_d0.mp4"), record=rec_path, realtime=True)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.frames >= 6 and win.viewport.packet is not None
                    and win.viewport.packet.result is not None, timeout=60000)
    from PySide6.QtGui import QAction

    fov = next(a for a in win.findChildren(QAction) if a.shortcut().toString() == "Ctrl+F")
    fov.trigger()  # while recording: refused, a recording keeps one field of view (in its header)
    assert "stop recording first" in win.banner.text()
    n_recorded = win.inference.stop_recording()
    win.stop()
    assert n_recorded >= 6 and len(read_recording(rec_path)) == n_recorded
    assert "FPS" in win.status.text() and "latency" in win.status.text()

    vp = win.viewport
    pk = vp.packet
    # Both halves show the frame with the face drawn over it: with the mesh the image differs from without.
    shaded = _pixels(vp)
    saved = pk.meshes
    pk.meshes = {}
    vp.update()
    frame_only = _pixels(vp)
    pk.meshes = saved
    half = shaded.shape[1] // 2
    for sl in (slice(0, half), slice(half, None)):
        changed = np.abs(shaded[:, sl].astype(int) - frame_only[:, sl]).sum(-1) > 30
        assert 0.01 < changed.mean() < 0.6
    assert frame_only.std() > 10  # the video frame itself is shown

    # Each toggle changes the picture.
    images = {"shaded": shaded}
    for k, name in enumerate(("albedo", "geometry", "wireframe"), start=1):
        vp.set_mode(k)
        images[name] = _pixels(vp)
    vp.set_mode(0)
    # The error overlay asks the pipeline for the photometric error; the next packets carry its heat map.
    win._toggle_overlay()
    assert win.inference is None  # stopped above: the needs apply to the next source
    from facetrack.io.sources import Frame

    vp.packet = _packet(win, Frame(pk.timestamp, pk.index, pk.frame))
    images["error overlay"] = _pixels(vp)
    heat = vp.packet.meshes["final"][:, 16:19]
    win._toggle_overlay()
    vp.packet = pk
    vp.toggle_orbit()
    images["orbit"] = _pixels(vp)
    vp.toggle_orbit()
    # Follow face zooms on the face's box, easing in over a few paints (a smaller box: a face further away).
    import dataclasses

    box = pk.result.box
    pk.result = dataclasses.replace(pk.result, box=dataclasses.replace(box, side=box.side / 3))
    vp.toggle_follow()
    for _ in range(25):
        images["follow face"] = _pixels(vp)
    assert vp.view[2] > 2.0 and np.allclose(vp.view[:2], [2 * box.cx / pk.size[0] - 1, 1 - 2 * box.cy / pk.size[1]],
                                            atol=0.05)
    vp.toggle_follow()
    for _ in range(25):
        back = _pixels(vp)
    assert np.allclose(vp.view, [0, 0, 1], atol=1e-3) and np.abs(back.astype(int) - shaded).mean() < 0.5
    pk.result = dataclasses.replace(pk.result, box=box)
    for name, img in images.items():
        if name != "shaded":
            assert np.abs(img.astype(int) - shaded).mean() > 0.5, f"{name} did not change the image"
    # The error overlay is a non-empty heat map over the face; without the overlay no error is computed.
    assert heat.max() > 0.05 and (heat.sum(1) > 0).mean() > 0.2
    assert not win.pipeline(Frame(pk.timestamp, pk.index, pk.frame), win.needs()).photometric
    # Every toggle has a keyboard shortcut, and the shortcut's action does what the toggle does.
    actions = {a.shortcut().toString(): a for a in win.findChildren(QAction) if not a.shortcut().isEmpty()}
    assert {"1", "2", "3", "4", "E", "O", "F", "R", "Ctrl+O", "Ctrl+K"} <= set(actions)
    actions["3"].trigger()
    assert vp.mode == 2
    actions["E"].trigger()
    assert vp.overlay
    # Ctrl+F asks for the camera's field of view (the head pose in its frame: facetrack.track.head)
    from PySide6.QtWidgets import QInputDialog

    tracker = win.pipeline.tracker
    before = tracker.source_vfov_deg
    monkeypatch.setattr(QInputDialog, "getDouble", lambda *a, **k: (43.0, True))
    actions["Ctrl+F"].trigger()
    assert tracker.source_vfov_deg == 43.0
    tracker.source_vfov_deg = before
    ARTIFACTS.mkdir(exist_ok=True)
    assert win.grab().save(str(ARTIFACTS / "test-window.png"))


def _packet(win, frame):
    import time

    from facetrack.app.packets import make_packet

    return make_packet(frame, time.monotonic(), win.pipeline(frame, win.needs()), win.pipeline.camera)


def test_window_streams_and_shows_it(qtbot, pipeline: Pipeline, shared_dir: Path, receiver) -> None:
    """S toggles a VMC stream to the target given at start; the status line names it with its rate. N asks the
    stream for the avatar's neutral face (io.streaming.StreamNeutral; the stream then takes it from its next
    frames: tests/test_streaming.py), and without a stream says to start one."""
    ensure_app()
    from facetrack.app.window import MainWindow
    from facetrack.io.streaming import NEUTRAL_TAKING, StreamTarget

    target = StreamTarget("vmc", "127.0.0.1", receiver.port)
    win = MainWindow(pipeline, str(shared_dir / "videos" / "liveportrait_d0.mp4"), stream_to=target)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.frames >= 8 and "msg/s" in win.status.text(), timeout=60000)
    assert f"streaming VMC -> 127.0.0.1:{receiver.port}" in win.status.text()
    assert win.stream_action.text().startswith("Stop streaming")
    assert len(receiver.wait_for("/VMC/Ext/Bone/Pos", 5)) >= 5
    win.take_neutral()
    assert NEUTRAL_TAKING in win.inference.streamer.status() and not win.banner.isVisible()
    win.toggle_streaming()
    assert win.inference.streamer is None and win.stream_action.text().startswith("Start streaming")
    win.take_neutral()
    assert win.banner.isVisible() and "start streaming first" in win.banner.text()
    win.stop()


def test_missing_video_keeps_the_app_up(qtbot, pipeline: Pipeline, tmp_path: Path) -> None:
    ensure_app()
    from facetrack.app.window import MainWindow

    win = MainWindow(pipeline, str(tmp_path / "nope.mp4"))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=10000)
    assert "source not found" in win.banner.text()
    win.open_source("9")  # no such camera
    qtbot.waitUntil(lambda: win.banner.isVisible() and "camera 9" in win.banner.text(), timeout=10000)
    win.stop()


def test_playback_fills_the_plots_like_live_tracking(qtbot, pipeline: Pipeline, tmp_path: Path) -> None:
    """A recording is a source: the same packet path fills the viewport and every plot, with recorded values."""
    ensure_app()
    from facetrack.app.window import MainWindow
    from facetrack.io.recording import Recorder
    from facetrack.vision.crop import CropBox

    model = pipeline.model
    x = np.zeros(model.layout.size, np.float32)
    sl = model.layout.slices()
    x[sl["trans"]] = [0, 0, -115]
    x[sl["gamma"].start] = 0.8
    path = tmp_path / "p.ftrec"
    jaw = sl["alpha_exp"].start + model.exp_names.index("jawOpen")
    with Recorder(path, model.layout, model.exp_names) as rec:
        for i in range(5):
            x[jaw] = i / 4
            x[sl["rot"].start + 1] = 0.1 * i
            rec.write(i * 0.04, i, x, {"base": 0.2, "final": 0.1 + 0.01 * i}, CropBox(320, 240, 300), (640, 480))
    win = MainWindow(pipeline, str(path), playback=True)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: len(win.plots.data["expressions"]["jawOpen"]) >= 5, timeout=15000)
    win.stop()
    from PySide6.QtGui import QAction

    shortcuts = {a.shortcut().toString() for a in win.findChildren(QAction) if not a.shortcut().isEmpty()}
    assert not shortcuts & {"R", "Ctrl+O", "Ctrl+K"}  # no camera, source or record actions in playback
    data = win.plots.data
    assert [v for _, v in data["expressions"]["jawOpen"]][:5] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0], abs=1e-5)
    assert [v for _, v in data["head pose"]["yaw"]][:5] == pytest.approx(np.degrees(0.1 * np.arange(5)), abs=1e-3)
    assert [v for _, v in data["photometric error"]["final"]][:5] == pytest.approx([0.1, 0.11, 0.12, 0.13, 0.14])
    assert all(len(series) >= 5 for plot in data.values() for series in plot.values())
    assert [t for t, _ in data["translation"]["x"]][:5] == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])
    pk = win.viewport.packet
    assert pk.frame is None and set(pk.meshes) == {"base", "final"} and pk.size == (640, 480)
    assert _pixels(win.viewport).std() > 5  # the face is drawn where it was in the recorded frame


def test_follow_view_frames_the_face_inside_the_frame() -> None:
    from facetrack.app.viewport import FOLLOW_CROPS, follow_view

    cx, cy, s = follow_view(640, 360, 100, 1280, 720)
    assert abs(s - 720 / (FOLLOW_CROPS * 100)) < 1e-9 and abs(cx) < 1e-9 and abs(cy) < 1e-9
    cx, cy, s = follow_view(10, 10, 100, 1280, 720)  # a face in the corner: the view stops at the frame's edge
    assert abs(cx - (-1 + 1 / s)) < 1e-9 and abs(cy - (1 - 1 / s)) < 1e-9
    assert follow_view(640, 360, 600, 1280, 720)[2] == 1.0  # a large face: the whole frame


def test_window_with_a_landmark_thread(qtbot, model_file: Path, landmarker: Path, shared_dir: Path,
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a machine with cores to spare the window finds MediaPipe's landmarks on a thread of its own: it
    tracks, records and draws as with one thread, and stopping ends all three threads. While the fit learns the
    person's resting face the status line says so, and only then; C asks for it again. A recording replayed
    (no image to look at) and this 2-core machine keep one inference thread."""
    ensure_app()
    from PySide6.QtGui import QAction

    from facetrack.app.window import CALIBRATING, MainWindow
    from facetrack.track import pipeline as pipeline_module

    folder = paths.weights_dir()
    if not (folder / "encoder.pt").is_file():
        pytest.skip("no trained weights in weights/")
    pipe = Pipeline(Tracker(load_weights(folder, FaceModel.load(model_file)), landmarker=landmarker))
    video = str(shared_dir / "videos" / "liveportrait_d13.mp4")  # 12 s: past the fit's 40 calibration frames
    monkeypatch.setattr(pipeline_module.os, "cpu_count", lambda: 8)
    rec_path = tmp_path / "staged.ftrec"
    win = MainWindow(pipe, video, record=rec_path)
    qtbot.addWidget(win)
    seen = []  # per drawn frame with a fit: whether it calibrates, and whether the status line says so
    draw = win.on_packet

    def drawn(pk, results=None) -> None:
        draw(pk, results)
        if pk.result is not None and pk.result.present and pk.result.fit is not None:
            seen.append((pk.result.fit.calibrating, CALIBRATING in win.status.text()))

    monkeypatch.setattr(win, "on_packet", drawn)  # packets are drawn on this thread, once the test waits
    win.show()
    stage = win.landmarks
    assert stage is not None and stage.is_alive()
    qtbot.waitUntil(lambda: win.frames >= 6 and win.viewport.packet is not None
                    and win.viewport.packet.result is not None and win.viewport.packet.result.present, timeout=60000)
    assert "MediaPipe" in win.status.text() and "tracking" in win.status.text() and win.tracking_fps > 0
    # the fit's first frames learn the resting face, and the status line says so until they are done
    qtbot.waitUntil(lambda: any(not calibrating for calibrating, _ in seen), timeout=60000)
    assert seen[0][0] and all(calibrating == said for calibrating, said in seen)
    relearn = next(a for a in win.findChildren(QAction) if a.shortcut().toString() == "C")
    fitter = win.pipeline.tracker.fitter
    relearn.trigger()  # C: the resting face learnt again from the next frame (tests/test_headless.py)
    assert win.pipeline.relearning or fitter.state.frames < fitter.cfg.calibration_frames
    n = win.inference.stop_recording()
    win.stop()
    assert not stage.is_alive() and win.landmarks is None
    back = read_recording(rec_path)
    assert n >= 6 and len(back) == n and back.values["face"][:, 0].all()
    monkeypatch.setattr(pipeline_module.os, "cpu_count", lambda: 2)
    win.open_source(video)
    assert win.landmarks is None and win.inference is not None
    win.stop()
