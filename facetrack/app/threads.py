"""Capture and inference threads. The GUI thread never waits on either.

Capture keeps only the newest frame (stale frames are dropped, never queued; a recording's frames are data
for the plots, so in playback capture waits for each to be taken instead) and paces a source that is not
live (a video, a recording) at its own frame rate, from the moment inference takes frames (the inference
thread can start later than one frame's interval, and a file's first frame was lost); inference runs the
pipeline on whatever frame is newest when it is free, with the Needs the window sets, and records every
frame it processes. With MediaPipe, a landmark thread (`LandmarkStage`) sits between the two: it finds the
face in the newest frame while inference finishes the one before, so the frame rate is the slower stage's
rather than their sum.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import torch
from PySide6.QtCore import QThread, Signal
from threadpoolctl import threadpool_limits

from facetrack.app.packets import INFERENCE_THREADS, WINDOW_NEEDS, make_packet
from facetrack.errors import FacetrackError, one_line
from facetrack.io.recording import Recorder
from facetrack.io.sources import Source, open_source, paced
from facetrack.io.streaming import Streamer
from facetrack.render.formation import base_params
from facetrack.render.reconstruction import NOTHING, Needs
from facetrack.track.pipeline import RECORDING_NEEDS, LatestFrame, Pipeline, record, stream

READY_TIMEOUT_S = 5.0  # capture waits at most this long for inference to start


class CaptureThread(QThread):
    failed = Signal(str)
    opened = Signal(object)  # the Source, once open
    finished_source = Signal()
    fps = Signal(float)

    def __init__(self, source: str, mailbox: LatestFrame, realtime: bool = True, layout=None,
                 consumer_ready: threading.Event | None = None) -> None:
        super().__init__()
        self.source, self.mailbox, self.realtime, self.layout = source, mailbox, realtime, layout
        self.consumer_ready = consumer_ready
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self.wait(3000)

    def run(self) -> None:
        try:
            src: Source = open_source(self.source, self.layout)
            self.opened.emit(src)
            waited = time.monotonic()  # a file's first frames must not be dropped while inference starts
            while self.consumer_ready is not None and not self.consumer_ready.wait(0.02):
                if self._stop.is_set() or time.monotonic() - waited > READY_TIMEOUT_S:
                    break
            count, window = 0, time.monotonic()
            for frame in paced(src) if self.realtime else src:
                if self._stop.is_set():
                    return
                if self.layout is None:
                    self.mailbox.put((frame, time.monotonic()))
                elif not self.mailbox.put_when_taken((frame, time.monotonic()), self._stop):
                    return  # a recording's frames are data for the plots: none dropped, playback waits instead
                count += 1
                if time.monotonic() - window >= 1.0:
                    self.fps.emit(count / (time.monotonic() - window))
                    count, window = 0, time.monotonic()
            if src.problems:  # what the stream lost: undecodable frames, skipped files
                self.failed.emit(f"{src.name}: {src.problems}")
            self.finished_source.emit()
        except FacetrackError as e:
            self.failed.emit(str(e))
        except Exception as e:  # noqa: BLE001 - a camera that disappears raises from deep in OpenCV
            self.failed.emit(f"capture stopped: {one_line(e)}")


class PacketBox:
    """Inference -> GUI: the newest packet, plus every result since the GUI last looked (for the plots).

    A signal per packet would queue packets in Qt's event loop whenever painting is slower than inference, and
    latency would grow with the queue; with this box the GUI always draws the newest frame."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._packet = None
        self._pending: list = []

    def put(self, pk) -> None:
        with self._lock:
            self._packet = pk
            if pk.result is not None and pk.result.present:
                self._pending.append((pk.timestamp, pk.result))

    def take(self):
        """(newest packet or None, [(timestamp, result), ...] since the last take)."""
        with self._lock:
            pk, pending = self._packet, self._pending
            self._packet, self._pending = None, []
            return pk, pending


class InferenceThread(QThread):
    ready = Signal()  # a packet waits in `box`
    failed = Signal(str)

    def __init__(self, pipeline: Pipeline, mailbox: LatestFrame) -> None:
        super().__init__()
        self.pipeline, self.mailbox = pipeline, mailbox
        self.needs: Needs = NOTHING  # set by the window from what it shows
        self.box = PacketBox()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.recorder: Recorder | None = None
        self.streamer: Streamer | None = None  # set and cleared by the window's stream toggle
        self.processed = 0
        self.running = threading.Event()  # set once the loop takes frames (capture waits for it)

    def stop(self) -> None:
        self._stop.set()
        self.wait(5000)
        self.stop_recording()
        self.stop_streaming()

    def stop_streaming(self) -> None:
        streamer, self.streamer = self.streamer, None
        if streamer is not None:
            streamer.close()

    def start_recording(self, path: Path, source: Source) -> None:
        rec = self.pipeline.recorder(path, source)
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
        torch.set_num_threads(INFERENCE_THREADS)
        with threadpool_limits(limits=INFERENCE_THREADS, user_api="blas"):
            self._loop()

    def _loop(self) -> None:
        # The first reconstruction in this thread costs several frames' time (torch sets up its kernels and
        # buffers); done here on the rest face, it no longer makes the source's first frames stale.
        model = self.pipeline.model
        self.pipeline.tracker.reconstruct(model.layout.join(base_params(model))[0].numpy(), WINDOW_NEEDS)
        self.running.set()
        while not self._stop.is_set():
            item = self.mailbox.take()
            if item is None:
                time.sleep(0.002)
                continue
            frame, captured, *sighted = item  # (frame, captured[, sighting]): the landmark stage adds one
            recording = self.recorder is not None
            needs = self.needs | RECORDING_NEEDS if recording else self.needs
            try:
                r = self.pipeline(frame, needs, sighted[0] if sighted else None)
                pk = make_packet(frame, captured, r, self.pipeline.camera)
            except Exception as e:  # noqa: BLE001 - keep the app up; say what broke
                self.failed.emit(f"reconstruction failed on frame {frame.index}: {one_line(e)}")
                continue
            self.processed += 1
            with self._lock:
                if self.recorder is not None and r is not None:
                    try:
                        record(self.recorder, frame, r)
                    except FacetrackError as e:
                        self.recorder = None
                        self.failed.emit(str(e))
            streamer = self.streamer
            if streamer is not None and r is not None:
                stream(streamer, frame, r)
            self.box.put(pk)
            self.ready.emit()
