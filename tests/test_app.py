"""The window under Xvfb (pytest-xvfb starts it): real capture and inference threads on a shared video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from facetrack import paths  # noqa: E402
from facetrack.app.main import ensure_app  # noqa: E402
from facetrack.model.facemodel import FaceModel  # noqa: E402
from facetrack.stream.recording import read_recording  # noqa: E402
from facetrack.tracker import Tracker  # noqa: E402
from facetrack.weights import load_weights  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "out"


@pytest.fixture(scope="module")
def tracker(model_file: Path) -> Tracker:
    folder = paths.weights_dir()
    if not (folder / "encoder.pt").is_file():
        pytest.skip("no trained weights in weights/")
    return Tracker(load_weights(folder, FaceModel.load(model_file)))


def _pixels(viewport) -> np.ndarray:
    img = viewport.grabFramebuffer().convertToFormat(viewport.grabFramebuffer().Format.Format_RGB888)
    w, h = img.width(), img.height()
    return np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, -1)[:, : w * 3] \
        .reshape(h, w, 3).copy()


def test_window_on_video(qtbot, tracker: Tracker, shared_dir: Path, tmp_path: Path) -> None:
    ensure_app()
    from facetrack.app.window import MainWindow

    rec_path = tmp_path / "session.ftrec"
    win = MainWindow(tracker, str(shared_dir / "videos" / "liveportrait_d0.mp4"), record=rec_path, realtime=True)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.frames >= 6 and win.viewport.packet is not None
                    and win.viewport.packet.result is not None, timeout=60000)
    n_recorded = win.inference.stop_recording()
    win.stop()
    assert n_recorded >= 6 and len(read_recording(rec_path)) == n_recorded
    assert "FPS" in win.status.text() and "latency" in win.status.text()

    vp = win.viewport
    pk = vp.packet
    # Both halves show the frame with the face drawn over it: with the mesh the image differs from without.
    shaded = _pixels(vp)
    saved = pk.base, pk.final
    pk.base = pk.final = None
    vp.update()
    frame_only = _pixels(vp)
    pk.base, pk.final = saved
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
    vp.toggle_overlay()
    images["error overlay"] = _pixels(vp)
    vp.toggle_overlay()
    vp.toggle_orbit()
    images["orbit"] = _pixels(vp)
    vp.toggle_orbit()
    for name, img in images.items():
        if name != "shaded":
            assert np.abs(img.astype(int) - shaded).mean() > 0.5, f"{name} did not change the image"
    # The error overlay is a non-empty heat map over the face.
    assert pk.final.heat.max() > 0.05 and (pk.final.heat.sum(1) > 0).mean() > 0.2
    # Every toggle has a keyboard shortcut, and the shortcut's action does what the toggle does.
    from PySide6.QtGui import QAction

    actions = {a.shortcut().toString(): a for a in win.findChildren(QAction) if not a.shortcut().isEmpty()}
    assert {"1", "2", "3", "4", "E", "O", "R", "Ctrl+O", "Ctrl+K"} <= set(actions)
    actions["3"].trigger()
    assert vp.mode == 2
    actions["E"].trigger()
    assert vp.overlay
    ARTIFACTS.mkdir(exist_ok=True)
    assert win.grab().save(str(ARTIFACTS / "test-window.png"))


def test_missing_video_keeps_the_app_up(qtbot, tracker: Tracker, tmp_path: Path) -> None:
    ensure_app()
    from facetrack.app.window import MainWindow

    win = MainWindow(tracker, str(tmp_path / "nope.mp4"))
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=10000)
    assert "source not found" in win.banner.text()
    win.open_source("9")  # no such camera
    qtbot.waitUntil(lambda: win.banner.isVisible() and "camera 9" in win.banner.text(), timeout=10000)
    win.stop()


def test_playback(qtbot, tracker: Tracker, tmp_path: Path) -> None:
    ensure_app()
    from facetrack.app.window import PlaybackWindow
    from facetrack.stream.recording import Recorder

    x = np.zeros(tracker.model.layout.size, np.float32)
    sl = tracker.model.layout.slices()
    x[sl["trans"]] = [0, 0, -115]
    x[sl["gamma"].start] = 0.8
    path = tmp_path / "p.ftrec"
    with Recorder(path, tracker.model.layout, tracker.model.exp_names) as rec:
        for i in range(3):
            x[sl["alpha_exp"].start + tracker.model.exp_names.index("jawOpen")] = i / 2
            rec.write(i * 0.02, i, x, 0.1, 0.1)
    win = PlaybackWindow(tracker, path)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.index >= 3, timeout=10000)
    assert win.viewport.orbit and win.viewport.packet is not None
    assert _pixels(win.viewport).std() > 5
