"""Starting the Qt application (the OpenGL format must be set before the QApplication exists)."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QSurfaceFormat
from PySide6.QtWidgets import QApplication


def ensure_app() -> QApplication:
    fmt = QSurfaceFormat()
    fmt.setVersion(3, 3)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setDepthBufferSize(24)
    QSurfaceFormat.setDefaultFormat(fmt)
    return QApplication.instance() or QApplication(sys.argv[:1])


def run_gui(tracker, source: str, record: Path | None = None) -> int:
    from facetrack.app.window import MainWindow

    app = ensure_app()
    win = MainWindow(tracker, source, record)
    win.show()
    return app.exec()


def play_gui(tracker, recording: Path) -> int:
    from facetrack.app.window import PlaybackWindow

    app = ensure_app()
    win = PlaybackWindow(tracker, recording)
    win.show()
    return app.exec()
