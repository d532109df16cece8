"""The main window: viewport (base | final), live plots, status line, recording, shortcuts.

One window for live tracking and playback: a recording is just another source. In playback the source and
record actions are absent (there is no camera to switch to and nothing new to record).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMainWindow, QVBoxLayout, QWidget

from facetrack.app.packets import WINDOW_NEEDS, Packet
from facetrack.app.plots import Plots
from facetrack.app.threads import CaptureThread, InferenceThread, LatestFrame
from facetrack.app.viewport import MODES, Viewport
from facetrack.errors import FacetrackError
from facetrack.io.sources import Source
from facetrack.io.streaming import NEUTRAL_SECONDS, VMC_PORT, Streamer, StreamTarget
from facetrack.render.reconstruction import Needs
from facetrack.track.pipeline import HOLD_FRAMES, LandmarkStage, Pipeline, landmark_thread_pays

# The status line while the fit learns the person's resting face (the first frames of a face: what the face
# does then becomes its rest, so raised brows or a smile there would read as rest for good)
CALIBRATING = "learning the resting face: keep it relaxed"


class MainWindow(QMainWindow):
    def __init__(self, pipeline: Pipeline, source: str | None = None, record: Path | None = None,
                 realtime: bool = True, playback: bool = False, stream_to: StreamTarget | None = None) -> None:
        super().__init__()
        self.pipeline, self.realtime, self.record_path, self.playback = pipeline, realtime, record, playback
        # The stream toggle sends here: the --vmc/--osc target, or VMC on this machine's default port.
        self.stream_target = stream_to or StreamTarget("vmc", "127.0.0.1", VMC_PORT)
        self._stream_at_start = stream_to is not None
        self.setWindowTitle("facetrack" + (" - playback" if playback else ""))
        self.model = pipeline.model
        self.viewport = Viewport(self.model.face_triangles.numpy(), self.model.n_vertices)
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
        self.plots.setFixedWidth(400)
        root = QHBoxLayout()
        root.addLayout(left, 1)
        root.addWidget(self.plots)
        central = QWidget()
        central.setLayout(root)
        self.setCentralWidget(central)
        self.status = QLabel("no source")
        self.statusBar().addWidget(self.status, 1)
        self.record_action: QAction | None = None
        self.stream_action: QAction | None = None
        self._make_actions()
        self.capture_fps, self.latency_ms, self.infer_ms, self.frames = 0.0, 0.0, 0.0, 0
        self.latencies: deque[float] = deque(maxlen=1000)  # capture-to-display, ms
        self.shown: deque[float] = deque(maxlen=31)  # when the last packets were drawn: the tracking rate
        self.capture: CaptureThread | None = None
        self.inference: InferenceThread | None = None
        self.landmarks: LandmarkStage | None = None
        self.opened: Source | None = None
        self.source = source
        self.resize(1280, 760)
        if source is not None:
            self.open_source(source)

    # -- actions -------------------------------------------------------------------------------------
    def _make_actions(self) -> None:
        """Menus, a toolbar with the same actions, and a keyboard shortcut for each."""
        bar = self.addToolBar("controls")
        if not self.playback:
            menu = self.menuBar().addMenu("&Source")
            bar.addAction(self._action(menu, "Open video or image folder…", "Ctrl+O", self._choose_file))
            bar.addAction(self._action(menu, "Camera…", "Ctrl+K", self._choose_camera))
            self._action(menu, "Camera's field of view…", "Ctrl+F", self._choose_field_of_view)
            self._action(menu, "Learn the resting face again (keep it relaxed)", "C", self.pipeline.relearn)
            bar.addSeparator()
        view = self.menuBar().addMenu("&View")
        for k, name in enumerate(MODES):
            bar.addAction(self._action(view, name.capitalize(), str(k + 1), lambda *_, k=k: self.viewport.set_mode(k)))
        bar.addAction(self._action(view, "Error overlay", "E", self._toggle_overlay))
        bar.addAction(self._action(view, "Orbit view", "O", self.viewport.toggle_orbit))
        bar.addAction(self._action(view, "Follow face", "F", self.viewport.toggle_follow))
        if not self.playback:
            bar.addSeparator()
            rec = self.menuBar().addMenu("&Record")
            self.record_action = self._action(rec, "Start recording", "R", self.toggle_recording)
            bar.addAction(self.record_action)
        stream = self.menuBar().addMenu("&Stream")
        self.stream_action = self._action(stream, f"Start streaming ({self.stream_target})", "S", self.toggle_streaming)
        bar.addAction(self.stream_action)
        self._action(stream, f"Take the avatar's neutral face ({NEUTRAL_SECONDS:.0f} s: rest your face)", "N",
                     self.take_neutral)

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

    def _choose_field_of_view(self) -> None:
        """The camera's vertical field of view, for the head pose in its frame (facetrack.track.head): streams,
        plots and recordings. Not while recording: a recording keeps one, in its header."""
        if self.inference is not None and self.inference.recorder is not None:
            self.show_error("stop recording first: a recording keeps one field of view")
            return
        tracker = self.pipeline.tracker
        value, ok = QInputDialog.getDouble(self, "Field of view", "The camera's vertical field of view (degrees):",
                                           tracker.source_vfov_deg, 1.0, 179.0, 1)
        if ok:
            tracker.source_vfov_deg = value

    def _toggle_overlay(self) -> None:
        self.viewport.toggle_overlay()
        self._update_needs()

    def needs(self) -> Needs:
        """What the viewport shows: both levels, and the photometric error while the overlay is on."""
        return Needs(WINDOW_NEEDS.levels, photometric=self.viewport.overlay)

    def _update_needs(self) -> None:
        if self.inference is not None:
            self.inference.needs = self.needs()

    # -- pipeline ----------------------------------------------------------------------------------------
    def show_error(self, message: str) -> None:
        self.banner.setText(message)
        self.banner.show()

    def open_source(self, source: str) -> None:
        self.stop()
        self.banner.hide()
        self.source = source
        self.pipeline.reset()
        self.plots.clear()
        self.shown.clear()
        frames = LatestFrame()
        layout = self.model.layout if self.playback else None
        staged = landmark_thread_pays(self.pipeline.tracker) and not self.playback  # a recording has no image
        sighted = LatestFrame() if staged else frames
        self.inference = InferenceThread(self.pipeline, sighted)
        self.landmarks = LandmarkStage(self.pipeline.tracker, frames, sighted, self.inference.failed.emit) \
            if staged else None
        self.capture = CaptureThread(source, frames, self.realtime, layout, self.inference.running)
        self._update_needs()
        self.capture.failed.connect(self.show_error)
        self.capture.opened.connect(self._on_opened)
        self.capture.fps.connect(self._on_fps)
        self.capture.finished_source.connect(lambda: self.status.setText(self.status.text() + " · end of source"))
        self.inference.failed.connect(self.show_error)
        self.inference.ready.connect(self._on_ready)
        self.inference.start()
        if self.landmarks is not None:
            self.landmarks.start()
        self.capture.start()

    def _on_opened(self, src: Source) -> None:
        self.opened = src
        if getattr(src, "problems", ""):
            self.show_error(f"{src.name}: {src.problems}")
        if self.record_path is not None and not self.playback:
            self.toggle_recording()
        if self._stream_at_start and self.inference is not None and self.inference.streamer is None:
            self.toggle_streaming()

    def stop(self) -> None:
        for t in (self.capture, self.landmarks, self.inference):
            if t is not None:
                t.stop()
        self.capture = self.landmarks = self.inference = None

    def _on_fps(self, fps: float) -> None:
        self.capture_fps = fps

    def _on_ready(self) -> None:
        if self.inference is not None:
            pk, results = self.inference.box.take()
            if pk is not None:
                self.on_packet(pk, results)

    def on_packet(self, pk: Packet, results: list | None = None) -> None:
        """Draw the newest packet; the plots get every result since the last one (`results`)."""
        self.frames += 1
        self.viewport.set_packet(pk)
        self.latency_ms = 1e3 * (time.monotonic() - pk.captured)
        self.shown.append(time.monotonic())
        self.latencies.append(self.latency_ms)
        for stamp, res in results if results is not None else (
                [(pk.timestamp, pk.result)] if pk.result and pk.result.present else []):
            self.plots.add(stamp, res)
        if pk.result is not None:
            self.infer_ms = sum(pk.result.ms.values())
        r = pk.result
        face = "face" if r is not None and r.present else (
            "no face" if r is None or r.lost_frames > HOLD_FRAMES else "face lost: holding the last pose")
        if r is not None and r.present and r.fit is not None and r.fit.calibrating:
            face += f" ({CALIBRATING})"
        if r is not None and r.present and r.dense is not None and r.dense.other_faces:
            face += f" (+{r.dense.other_faces} other face{'s' * (r.dense.other_faces > 1)})"
        rec = f" · recording {self.inference.recorder.frames} frames" if self.inference and self.inference.recorder \
            else ""
        streamer = self.inference.streamer if self.inference else None
        rec = (f" · streaming {streamer.status()}" if streamer is not None else "") + rec
        what = f"playing {self.source} · " if self.playback else ""
        self.status.setText(f"{what}capture {self.capture_fps:.1f} FPS · tracking {self.tracking_fps:.1f} FPS · "
                            f"inference {self.infer_ms:.0f} ms · "
                            f"latency {self.latency_ms:.0f} ms · {self.frames} frames · {face}{rec} · "
                            f"{self.pipeline.tracker.front_end}")

    @property
    def tracking_fps(self) -> float:
        """Frames drawn per second over the last 30 (below the capture rate when frames go stale)."""
        span = self.shown[-1] - self.shown[0] if len(self.shown) > 1 else 0.0
        return (len(self.shown) - 1) / span if span > 0 else 0.0

    def toggle_streaming(self) -> None:
        """Start or stop sending every tracked frame to the stream target (VMC or OSC over UDP)."""
        if self.inference is None or self.stream_action is None:
            self.show_error("nothing to stream: open a source first")
            return
        if self.inference.streamer is None:
            try:
                self.inference.streamer = Streamer(self.stream_target, self.model.exp_names)
            except FacetrackError as e:
                self.show_error(str(e))
                return
            self.stream_action.setText(f"Stop streaming ({self.stream_target})")
        else:
            self.inference.stop_streaming()
            self.stream_action.setText(f"Start streaming ({self.stream_target})")

    def take_neutral(self) -> None:
        """The stream's neutral face from the next seconds of tracking (io.streaming.StreamNeutral); the status
        line says when it is set."""
        streamer = self.inference.streamer if self.inference else None
        if streamer is None:
            self.show_error("start streaming first: the neutral face is the stream's")
            return
        streamer.calibrate()

    def toggle_recording(self) -> None:
        if self.inference is None or self.opened is None or self.record_action is None:
            self.show_error("nothing to record: open a source first")
            return
        if self.inference.recorder is None:
            path = self.record_path or Path(time.strftime("facetrack-%Y%m%d-%H%M%S.ftrec"))
            try:
                self.inference.start_recording(path, self.opened)
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
