"""The main window: viewport (base | final), live plots, status line, recording, shortcuts."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QImage, QKeySequence, QPixmap
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMainWindow, QVBoxLayout, QWidget

from facetrack.app.packets import HEAT_MAX, Packet, level_mesh
from facetrack.app.threads import CaptureThread, InferenceThread, LatestFrame
from facetrack.app.viewport import MODES, Viewport
from facetrack.errors import FacetrackError
from facetrack.render.formation import views
from facetrack.render.images import heat_colors
from facetrack.stream.recording import read_recording
from facetrack.tracker import Tracker
from facetrack.vision.crop import CropBox

PLOTTED_EXPRESSIONS = ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "mouthSmile_R", "browInnerUp_L")
HISTORY = 300


class Plots(QWidget):
    """Rolling plots of pose, translation, chosen expressions and photometric error of both levels."""

    def __init__(self, exp_names: list[str]) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        self.exp_idx = [exp_names.index(n) for n in PLOTTED_EXPRESSIONS if n in exp_names]
        specs = [("head pose (deg)", ("yaw", "pitch", "roll")), ("translation (cm)", ("x", "y", "z + 115")),
                 ("expressions", tuple(exp_names[i] for i in self.exp_idx)),
                 ("photometric error", ("base", "final"))]
        self.curves, self.data = {}, {}
        for title, names in specs:
            w = pg.PlotWidget(title=title)
            w.addLegend(offset=(5, 5))
            w.setMinimumHeight(120)
            for k, n in enumerate(names):
                key = f"{title}/{n}"
                self.curves[key] = w.plot(pen=pg.intColor(k, hues=max(len(names), 3)), name=n)
                self.data[key] = deque(maxlen=HISTORY)
            lay.addWidget(w)
        bar = (heat_colors(np.linspace(0, HEAT_MAX, 256), HEAT_MAX)[None].repeat(14, 0) * 255).astype(np.uint8)
        img = QImage(bar.tobytes(), 256, 14, 256 * 3, QImage.Format.Format_RGB888)
        scale = QLabel()
        scale.setPixmap(QPixmap.fromImage(img.copy()))
        lay.addWidget(QLabel(f"error overlay: 0 (dark) to {HEAT_MAX} (bright) RGB distance"))
        lay.addWidget(scale)

    def add(self, p: dict[str, np.ndarray], photo: tuple[float, float]) -> None:
        rot = np.degrees(p["rot"])
        values = {"head pose (deg)/yaw": rot[1], "head pose (deg)/pitch": rot[0], "head pose (deg)/roll": rot[2],
                  "translation (cm)/x": p["trans"][0], "translation (cm)/y": p["trans"][1],
                  "translation (cm)/z + 115": p["trans"][2] + 115, "photometric error/base": photo[0],
                  "photometric error/final": photo[1]}
        for key in self.curves:
            if key.startswith("expressions/"):
                values[key] = p["exp_by_name"][key.split("/", 1)[1]]
        for key, v in values.items():
            self.data[key].append(float(v))
            self.curves[key].setData(np.fromiter(self.data[key], float))


class MainWindow(QMainWindow):
    def __init__(self, tracker: Tracker, source: str | None = None, record: Path | None = None,
                 realtime: bool = True) -> None:
        super().__init__()
        self.tracker, self.realtime, self.record_path = tracker, realtime, record
        self.setWindowTitle("facetrack")
        self.model = tracker.model
        self.viewport = Viewport(tracker.weights.face.triangles)
        self.banner = QLabel()
        self.banner.setStyleSheet("background:#7a1f1f;color:white;padding:6px;font-weight:bold")
        self.banner.hide()
        heads = QHBoxLayout()
        for text in ("base level (3DMM)", "final level (with correctives)"):
            lab = QLabel(text)
            lab.setAlignment(Qt.AlignmentFlag.AlignCenter)
            heads.addWidget(lab)
        left = QVBoxLayout()
        left.addWidget(self.banner)
        left.addLayout(heads)
        left.addWidget(self.viewport, 1)
        self.plots = Plots(self.model.exp_names)
        self.plots.setFixedWidth(380)
        root = QHBoxLayout()
        root.addLayout(left, 1)
        root.addWidget(self.plots)
        central = QWidget()
        central.setLayout(root)
        self.setCentralWidget(central)
        self.status = QLabel("no source")
        self.statusBar().addWidget(self.status, 1)
        self._make_actions()
        self.capture_fps, self.latency_ms, self.infer_ms, self.frames = 0.0, 0.0, 0.0, 0
        self.capture: CaptureThread | None = None
        self.inference: InferenceThread | None = None
        self.source = source
        self.resize(1280, 720)
        if source is not None:
            self.open_source(source)

    # -- actions -------------------------------------------------------------------------------------
    def _make_actions(self) -> None:
        """Menus, a toolbar with the same actions, and a keyboard shortcut for each."""
        bar = self.addToolBar("controls")
        menu = self.menuBar().addMenu("&Source")
        bar.addAction(self._action(menu, "Open video or image folder…", "Ctrl+O", self._choose_file))
        bar.addAction(self._action(menu, "Camera…", "Ctrl+K", self._choose_camera))
        bar.addSeparator()
        view = self.menuBar().addMenu("&View")
        for k, name in enumerate(MODES):
            bar.addAction(self._action(view, name.capitalize(), str(k + 1), lambda *_, k=k: self.viewport.set_mode(k)))
        bar.addAction(self._action(view, "Error overlay", "E", self.viewport.toggle_overlay))
        bar.addAction(self._action(view, "Orbit view", "O", self.viewport.toggle_orbit))
        bar.addSeparator()
        rec = self.menuBar().addMenu("&Record")
        self.record_action = self._action(rec, "Start recording", "R", self.toggle_recording)
        bar.addAction(self.record_action)

    def _action(self, menu, text: str, key: str, slot) -> QAction:
        a = QAction(text, self)
        a.setShortcut(QKeySequence(key))
        a.setToolTip(f"{text} ({key})")
        a.triggered.connect(slot)
        menu.addAction(a)
        return a

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video", "", "Videos (*.mp4 *.avi *.mov *.mkv *.webm)")
        if path:
            self.open_source(path)

    def _choose_camera(self) -> None:
        index, ok = QInputDialog.getInt(self, "Camera", "Camera index:", 0, 0, 16)
        if ok:
            self.open_source(str(index))

    # -- pipeline ----------------------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        self.banner.setText(message)
        self.banner.show()

    def open_source(self, source: str) -> None:
        self.stop()
        self.banner.hide()
        self.source = source
        self.tracker.reset()
        mailbox = LatestFrame()
        self.capture = CaptureThread(source, mailbox, self.realtime)
        self.inference = InferenceThread(self.tracker, mailbox)
        self.capture.failed.connect(self.show_error)
        self.capture.fps.connect(self._on_fps)
        self.capture.finished_source.connect(lambda: self.status.setText(self.status.text() + " · end of source"))
        self.inference.failed.connect(self.show_error)
        self.inference.packet.connect(self.on_packet)
        self.inference.start()
        self.capture.start()
        if self.record_path is not None:
            self.toggle_recording()

    def stop(self) -> None:
        for t in (self.capture, self.inference):
            if t is not None:
                t.stop()
        self.capture = self.inference = None

    def _on_fps(self, fps: float) -> None:
        self.capture_fps = fps

    def on_packet(self, pk: Packet) -> None:
        self.frames += 1
        self.viewport.set_packet(pk)
        self.latency_ms = 1e3 * (time.monotonic() - pk.captured)
        if pk.result is not None:
            self.infer_ms = sum(pk.result.ms.values())
            p = {k: v[0].numpy() for k, v in self.model.params(torch.from_numpy(pk.result.x)[None]).items()}
            p["exp_by_name"] = dict(zip(self.model.exp_names, p["alpha_exp"], strict=True))
            self.plots.add(p, (pk.result.photo_base, pk.result.photo_final))
        face = "face" if pk.result is not None else "no face"
        rec = f" · recording {self.inference.recorder.frames} frames" if self.inference and self.inference.recorder \
            else ""
        self.status.setText(f"capture {self.capture_fps:.1f} FPS · inference {self.infer_ms:.0f} ms · "
                            f"latency {self.latency_ms:.0f} ms · {self.frames} frames · {face}{rec}")

    def toggle_recording(self) -> None:
        if self.inference is None:
            self.show_error("nothing to record: open a source first")
            return
        if self.inference.recorder is None:
            path = self.record_path or Path(time.strftime("facetrack-%Y%m%d-%H%M%S.ftrec"))
            try:
                self.inference.start_recording(path, str(self.source))
            except FacetrackError as e:
                self.show_error(str(e))
                return
            self.record_action.setText("Stop recording")
            self.record_action.setToolTip(f"recording to {path} (R stops)")
        else:
            n = self.inference.stop_recording()
            self.record_action.setText("Start recording")
            self.statusBar().showMessage(f"recording saved: {n} frames", 5000)
            self.record_path = None

    def closeEvent(self, event) -> None:
        self.stop()
        super().closeEvent(event)


class PlaybackWindow(MainWindow):
    """`facetrack play`: a recording replayed into the viewport (orbit view: recordings hold no images)."""

    def __init__(self, tracker: Tracker, recording: Path) -> None:
        super().__init__(tracker)
        rec = read_recording(recording)
        if len(rec) == 0:
            raise FacetrackError(f"the recording {recording} holds no frames")
        self.xs = rec.params(self.model.layout)
        self.stamps = rec.timestamp - rec.timestamp[0]
        self.viewport.orbit = True
        self.index, self.t0 = 0, time.monotonic()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(10)
        self.status.setText(f"playing {recording} ({len(rec)} frames)")

    @torch.no_grad()
    def _tick(self) -> None:
        now = time.monotonic() - self.t0
        if self.index >= len(self.xs):
            self.index, self.t0 = 0, time.monotonic()
            return
        if self.stamps[self.index] > now:
            return
        x = torch.from_numpy(self.xs[self.index])[None]
        p = self.model.params(x)
        vb, vf = views(self.model(p), p, self.model.triangles, self.tracker.camera)
        frame = np.zeros((240, 240, 3), np.uint8)
        box, img = CropBox(120.0, 120.0, 240.0), torch.zeros(1, 3, 240, 240)
        pk = Packet(frame, self.index, time.monotonic(), None,
                    level_mesh(vb, img, box, self.tracker.camera, 240, 240, 0.0),
                    level_mesh(vf, img, box, self.tracker.camera, 240, 240, 0.0))
        pk.base.heat[:] = 0
        pk.final.heat[:] = 0
        self.viewport.set_packet(pk)
        self.index += 1
