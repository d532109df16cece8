"""Starting the Qt application (the OpenGL format must be set before the QApplication exists)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from PySide6.QtGui import QOpenGLContext, QSurfaceFormat
from PySide6.QtWidgets import QApplication

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


def run_gui(pipeline: Pipeline, source: str, record: Path | None = None) -> int:
    from facetrack.app.window import MainWindow

    app = ensure_app()
    win = MainWindow(pipeline, source, record)
    win.show()
    return app.exec()


def play_gui(pipeline: Pipeline, recording: Path) -> int:
    from facetrack.app.window import MainWindow

    app = ensure_app()
    win = MainWindow(pipeline, str(recording), playback=True)
    win.show()
    return app.exec()
