"""Capture and inference threads. The GUI thread never waits on either.

Capture keeps only the newest frame (stale frames are dropped, never queued) and paces a video file at its
own frame rate; inference takes whatever frame is newest when it is free and records every frame it processes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
from PySide6.QtCore import QThread, Signal

from facetrack.app.packets import make_packet
from facetrack.errors import FacetrackError
from facetrack.sources import open_source
from facetrack.stream.recording import Recorder
from facetrack.tracker import Tracker


class LatestFrame:
    """A one-slot mailbox: writing replaces, reading takes the newest frame once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item = None
        self.dropped = 0

    def put(self, item) -> None:
        with self._lock:
            if self._item is not None:
                self.dropped += 1
            self._item = item

    def take(self):
        with self._lock:
            item, self._item = self._item, None
            return item


class CaptureThread(QThread):
    failed = Signal(str)
    finished_source = Signal()
    fps = Signal(float)

    def __init__(self, source: str, mailbox: LatestFrame, realtime: bool = True) -> None:
        super().__init__()
        self.source, self.mailbox, self.realtime = source, mailbox, realtime
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self.wait(3000)

    def run(self) -> None:
        try:
            frames = open_source(self.source)
            is_file = not self.source.isdigit() and Path(self.source).is_file()
            fps = cv2.VideoCapture(self.source).get(cv2.CAP_PROP_FPS) if is_file else 0.0
            start, count, window = time.monotonic(), 0, time.monotonic()
            for stamp, index, rgb in frames:
                if self._stop.is_set():
                    return
                if self.realtime and is_file and fps > 0:  # play a video at its own rate
                    delay = start + stamp - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                self.mailbox.put((rgb, index, time.monotonic()))
                count += 1
                if time.monotonic() - window >= 1.0:
                    self.fps.emit(count / (time.monotonic() - window))
                    count, window = 0, time.monotonic()
            self.finished_source.emit()
        except FacetrackError as e:
            self.failed.emit(str(e))
        except Exception as e:  # noqa: BLE001 - a camera that disappears raises from deep in OpenCV
            self.failed.emit(f"capture stopped: {e}")


class InferenceThread(QThread):
    packet = Signal(object)
    failed = Signal(str)

    def __init__(self, tracker: Tracker, mailbox: LatestFrame) -> None:
        super().__init__()
        self.tracker, self.mailbox = tracker, mailbox
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.recorder: Recorder | None = None
        self.processed = 0

    def stop(self) -> None:
        self._stop.set()
        self.wait(5000)
        self.stop_recording()

    def start_recording(self, path: Path, source: str) -> None:
        rec = Recorder(path, self.tracker.model.layout, self.tracker.model.exp_names, source)
        with self._lock:
            self.recorder = rec

    def stop_recording(self) -> int:
        with self._lock:
            rec, self.recorder = self.recorder, None
        if rec is None:
            return 0
        rec.close()
        return rec.frames

    def run(self) -> None:
        while not self._stop.is_set():
            item = self.mailbox.take()
            if item is None:
                time.sleep(0.002)
                continue
            rgb, index, captured = item
            try:
                r = self.tracker(rgb)
                pk = make_packet(rgb, index, captured, r, self.tracker.camera)
            except Exception as e:  # noqa: BLE001 - keep the app up; say what broke
                self.failed.emit(f"reconstruction failed on frame {index}: {e}")
                continue
            self.processed += 1
            with self._lock:
                if self.recorder is not None and r is not None:
                    try:
                        self.recorder.write(captured, index, r.x, r.photo_base, r.photo_final)
                    except FacetrackError as e:
                        self.recorder = None
                        self.failed.emit(str(e))
            self.packet.emit(pk)
