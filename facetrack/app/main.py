"""Starting the Qt application (the OpenGL format must be set before the QApplication exists)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QOpenGLContext, QSurfaceFormat
from PySide6.QtWidgets import QApplication

from facetrack.io.streaming import StreamTarget
from facetrack.render import raster_gl
from facetrack.track.pipeline import Pipeline

CV2_QT_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")


def drop_cv2_qt_paths() -> None:
    """opencv-contrib-python (which mediapipe needs) bundles Qt 5 and points these variables at its own
    plugins when cv2 is imported; PySide6 would then load Qt 5's xcb plugin and fail. Drop them."""
    import cv2

    cv2_dir = os.path.dirname(cv2.__file__)
    for name in CV2_QT_VARIABLES:
        if os.environ.get(name, "").startswith(cv2_dir):
            del os.environ[name]


def release_qt_context() -> None:
    """Qt leaves its (GLX) context current on the GUI thread; with it current, draws on the CPU rasterizer's
    EGL context go nowhere (all-zero images). Released before each CPU render; Qt makes it current again."""
    ctx = QOpenGLContext.currentContext()
    if ctx is not None:
        ctx.doneCurrent()


def ensure_app() -> QApplication:
    drop_cv2_qt_paths()
    fmt = QSurfaceFormat()
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(24)
    QSurfaceFormat.setDefaultFormat(fmt)
    if release_qt_context not in raster_gl.BEFORE_RENDER:
        raster_gl.BEFORE_RENDER.append(release_qt_context)
    return QApplication.instance() or QApplication(sys.argv[:1])


def run_gui(pipeline: Pipeline, source: str, record: Path | None = None, stream_to: StreamTarget | None = None
            ) -> int:
    from facetrack.app.window import MainWindow

    app = ensure_app()
    win = MainWindow(pipeline, source, record, stream_to=stream_to)
    win.show()
    return _exec_closing_on_signals(app, win)


def play_gui(pipeline: Pipeline, recording: Path, stream_to: StreamTarget | None = None) -> int:
    from facetrack.app.window import MainWindow

    app = ensure_app()
    win = MainWindow(pipeline, str(recording), playback=True, stream_to=stream_to)
    win.show()
    return _exec_closing_on_signals(app, win)


def _exec_closing_on_signals(app: QApplication, win) -> int:
    """Run the event loop; Ctrl+C and SIGTERM close the window like its close button (recording saved,
    threads stopped). Qt's loop does not let Python run signal handlers, so a timer wakes it."""
    def close(*_) -> None:
        win.close()

    previous = {sig: signal.signal(sig, close) for sig in (signal.SIGINT, signal.SIGTERM)}
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(200)
    try:
        return app.exec()
    finally:
        timer.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
