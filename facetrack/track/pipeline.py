"""The one pipeline from frames to results, shared by the window, `run --no-gui`, playback and the bench.

    Source (io.sources) -> Pipeline: tracked image (Tracker) or replayed parameters (Reconstructor)
        -> FrameResult -> consumers: viewport packets (app), Recorder (io.recording), CSV and files (io.exports)

`Needs` travel with every frame, so a frame computes only what its consumers use.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from facetrack.errors import FacetrackError, one_line
from facetrack.io.recording import Recorder
from facetrack.io.sources import Frame, Source
from facetrack.io.streaming import Streamer, StreamFrame
from facetrack.render.reconstruction import LEVELS, NOTHING, Needs
from facetrack.track.head import SOURCE_VFOV_DEG
from facetrack.track.tracker import FrameResult, Sighting, Tracker
from facetrack.vision.crop import CropBox

RECORDING_NEEDS = Needs(frozenset(LEVELS), photometric=True)  # a record holds both levels' photometric error
HOLD_FRAMES = 5  # a face missing for longer is "no face": the window stops drawing the held mesh


class LatestFrame:
    """A one-slot mailbox between a capture thread and an inference thread: writing replaces, reading takes
    the newest frame once, so a slow consumer drops stale frames (counted) instead of queueing them."""

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

    def put_when_taken(self, item, stop: threading.Event) -> bool:
        """Write once the slot is empty (the last item was taken): nothing dropped, the writer waits instead.
        False when `stop` was set first."""
        while not stop.is_set():
            with self._lock:
                if self._item is None:
                    self._item = item
                    return True
            stop.wait(0.002)
        return False

    def wait_taken(self, stop: threading.Event) -> bool:
        """Wait until the slot is empty (the reader took the last item). False when `stop` was set first."""
        while not stop.is_set():
            with self._lock:
                if self._item is None:
                    return True
            stop.wait(0.001)
        return False


class Pipeline:
    """Frames in, FrameResults out (None where no face was found)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.model, self.camera = tracker.model, tracker.camera
        self.last: FrameResult | None = None
        self._relearn = False

    def reset(self) -> None:
        self.tracker.reset()
        self.last = None

    def relearn(self) -> None:
        """Ask for Tracker.relearn before the next frame: the window calls this from its own thread, and the
        tracker's state belongs to the thread that runs the frames."""
        self._relearn = True

    @property
    def relearning(self) -> bool:
        """A relearn asked for and not yet begun (no frame since)."""
        return self._relearn

    def __call__(self, frame: Frame, needs: Needs = NOTHING, ahead: Sighting | None = None) -> FrameResult | None:
        """The frame's result; when the face is missing, the last result held with `present` False (None
        before any face was seen), so streams and recordings never get a hole or a NaN. `ahead`: the frame's
        landmarks when they were found ahead (`frames_ahead`)."""
        if self._relearn:
            self._relearn = False
            self.tracker.relearn()
        if frame.x is None:
            found = self.tracker.find(frame.rgb, timestamp=frame.timestamp, sighting=ahead)
            r = self.tracker.finish(found, needs, frame.timestamp)
            if r is not None:
                self.last = r
                return r
            if self.last is None:
                return None
            held = self.last.lost_frames + 1
            self.last = dataclasses.replace(self.last, present=False, lost_frames=held, ms={}, fit=None)
            return self.last
        t0 = time.perf_counter()  # a replayed frame: the recorded parameters, no image, no photometric error
        recon = self.tracker.reconstruct(frame.x, Needs(needs.levels, False))
        box = frame.box or CropBox(frame.frame_size[0] / 2, frame.frame_size[1] / 2, min(frame.frame_size))
        return FrameResult(recon, box, None, {"model": 1e3 * (time.perf_counter() - t0)}, dict(frame.photometric),
                           frame_size=frame.frame_size, source_vfov_deg=frame.vfov_deg or SOURCE_VFOV_DEG)

    def recorder(self, path: Path, source: Source) -> Recorder:
        return Recorder(path, self.model.layout, self.model.exp_names, source.name, source.fps,
                        self.tracker.source_vfov_deg)


def frames_ahead(pipeline: Pipeline, source: Source) -> Iterator[tuple[Frame, Sighting | None]]:
    """The source's frames with their landmarks found one frame ahead on a second thread, so the landmarker
    (which releases the GIL) works on frame t+1 while frame t goes through encoder, fit and reconstruction.
    Throughput, not latency: each frame still takes as long. Frames pass through unchanged where looking
    ahead is not possible (dlib tracking, recordings)."""
    tracker = pipeline.tracker
    if not tracker.can_look_ahead:
        yield from ((f, None) for f in source)
        return

    def sight(f: Frame) -> Sighting | None:
        return tracker.sight(f.rgb, timestamp=f.timestamp) if f.x is None else None

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the landmarker has the other core; numpy's BLAS (the fit) too
    try:
        with ThreadPoolExecutor(max_workers=1) as pool, threadpool_limits(limits=1, user_api="blas"):
            frames = iter(source)
            current = next(frames, None)
            job = pool.submit(sight, current) if current is not None else None
            while current is not None:
                nxt = next(frames, None)
                ahead = job.result()
                job = pool.submit(sight, nxt) if nxt is not None else None
                yield current, ahead
                current = nxt
    finally:
        torch.set_num_threads(threads)


# The window with a landmark thread has three busy threads (landmarks, inference, the GUI's drawing): on two
# cores, with OpenGL rendered in software on the same cores (Xvfb), it drew fewer frames than one thread for the
# whole frame (d3, 12 s, three alternated pairs: 116-130 against 133-168 frames, median latency 116-126
# against 95-121 ms), while without the GUI's drawing (the bench's window rows) it drew a third more.
LANDMARK_THREAD_CORES = 4


def landmark_thread_pays(tracker: Tracker) -> bool:
    """Whether the window runs MediaPipe on a thread of its own (`LandmarkStage`): with MediaPipe, on a
    machine with a core for each of the three busy threads and one to spare."""
    return tracker.can_look_ahead and (os.cpu_count() or 1) >= LANDMARK_THREAD_CORES


class LandmarkStage(threading.Thread):
    """The window's landmark thread, between capture and inference: MediaPipe's faces in the newest frame
    (`Tracker.sight`), found while the inference thread encodes, fits and draws the frame before. The
    window's rate is then the slower half's instead of the sum of both (`frames_ahead` does the same for
    every frame of a file, without threads of its own). Takes the newest (frame, captured) from `inbox` and
    puts (frame, captured, sighting) in `outbox`; frames replayed from a recording (parameters, no image)
    pass with no sighting. `errors` says what failed, one line per frame.

    Just in time: a sighting handed on too early waits for inference and grows stale, and one found for a
    frame that inference never takes costs the cores that inference and the GUI share. So the stage starts
    on the newest frame `lead` seconds after inference took its last sighting, with `lead` learned from how
    long each sighting waited: inference then finds the next one just ready, about SLACK old. When the
    landmarker is the slower half, `lead` falls to 0 and inference waits for it instead."""

    SLACK = 0.004  # seconds a sighting may wait for inference (which looks every 2 ms)

    def __init__(self, tracker: Tracker, inbox: LatestFrame, outbox: LatestFrame,
                 errors: Callable[[str], None] | None = None) -> None:
        super().__init__(name="landmarks", daemon=True)
        self.tracker, self.inbox, self.outbox, self.errors = tracker, inbox, outbox, errors
        self.lead = 0.0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)

    def run(self) -> None:
        while not self._halt.is_set():
            item = self.inbox.take()
            if item is None:
                self._halt.wait(0.001)
                continue
            frame, captured = item
            try:
                sighting = self.tracker.sight(frame.rgb, timestamp=frame.timestamp) if frame.x is None else None
            except Exception as e:  # noqa: BLE001 - one bad frame must not end tracking; say what broke
                if self.errors is not None:
                    self.errors(f"landmarks failed on frame {frame.index}: {one_line(e)}")
                continue
            if not self.outbox.put_when_taken((frame, captured, sighting), self._halt):
                return
            put = time.perf_counter()
            if not self.outbox.wait_taken(self._halt):
                return
            waited = time.perf_counter() - put
            # waited about 0: inference was idle, waiting for this one (by an unknown time): back off fast
            self.lead = max(0.0, self.lead + 0.5 * (waited - self.SLACK)) if waited > self.SLACK / 2 \
                else self.lead / 2
            if self.lead > 0 and self._halt.wait(self.lead):  # then the newest frame, looked for every 1 ms
                return


def record(rec: Recorder, frame: Frame, r: FrameResult) -> None:
    rec.write(frame.timestamp, frame.index, r.x, r.photometric if r.present else {}, r.box, frame.frame_size,
              r.present)


def stream(streamer: Streamer, frame: Frame, r: FrameResult) -> None:
    """Queue a result for the streamer's thread (held results go out flagged as not present)."""
    head = r.head
    streamer.send(StreamFrame(frame.timestamp, r.present, r.recon.params["alpha_exp"].astype(np.float32),
                              head.rotation, head.degrees, head.translation_cm))


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _ordinal(n: int) -> str:
    return {1: "", 2: "second ", 3: "third "}.get(n, f"{n}th ")


def run_headless(pipeline: Pipeline, source: Source, record_to: Path | None, max_frames: int | None = None,
                 quiet: bool = False, streamer: Streamer | None = None) -> dict:
    """Process a source as fast as possible; print progress and FPS; return the figures."""
    rec = pipeline.recorder(record_to, source) if record_to else None
    needs = RECORDING_NEEDS if rec else NOTHING
    n = found = crowded = 0
    stage: dict[str, float] = {}
    t0 = time.perf_counter()
    interrupted = False
    try:
        for frame, ahead in frames_ahead(pipeline, source):
            r = pipeline(frame, needs, ahead)
            n += 1
            if r is not None and r.present:
                found += 1
                crowded += bool(r.dense is not None and r.dense.other_faces)
                for k, v in r.ms.items():
                    stage[k] = stage.get(k, 0.0) + v
            if rec and r is not None:
                record(rec, frame, r)
            if streamer is not None and r is not None:
                stream(streamer, frame, r)
            if max_frames and n >= max_frames:
                break
    except KeyboardInterrupt:  # Ctrl+C, or SIGTERM (the CLI turns it into this): end cleanly, say what was done
        interrupted = True
    finally:
        if rec:
            rec.close()
        if streamer is not None:
            streamer.close()
    wall = time.perf_counter() - t0
    if n == 0:
        raise FacetrackError(f"no frames processed from {source.name}")
    figures = {"frames": n, "faces": found, "fps": n / wall, "wall_s": wall, "interrupted": interrupted,
               "ms_per_frame": {k: v / max(found, 1) for k, v in stage.items()},
               "backend": pipeline.tracker.backend.name}
    figures["problems"] = source.problems
    picker = pipeline.tracker.picker
    figures["faces_policy"] = {"frames_with_other_faces": crowded, "switches": picker.switches,
                               "scene_cuts": picker.cuts}
    neutral = streamer.neutral if streamer is not None else None
    if streamer is not None:
        figures["stream"] = {"bundles": streamer.bundles, "messages": streamer.messages, "errors": streamer.errors,
                             "dropped": streamer.dropped}
        if neutral is not None:
            figures["stream"]["neutral"] = None if neutral.values is None else dict(
                zip(pipeline.model.exp_names, neutral.values.tolist(), strict=True))
    if not quiet:
        if streamer is not None:
            print(f"streamed {streamer.bundles} frames ({streamer.messages} messages) to {streamer.target}"
                  + (f", {streamer.errors} send errors" if streamer.errors else ""))
        if neutral is not None and neutral.values is None:
            print(f"the stream's neutral face was not set: under {neutral.seconds:g} s of tracked frames")
        elif neutral is not None:
            top = sorted(figures["stream"]["neutral"].items(), key=lambda kv: -kv[1])[:3]
            print("the stream's neutral face is set; its highest resting weights, which read 0 from then on: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in top))
        if source.problems:
            print(f"{source.name}: {source.problems}")
        if crowded:
            print(f"other faces in {crowded} frames: tracking the {_ordinal(picker.rank)}largest face "
                  f"({_count(picker.switches, 'switch', 'switches')} to a larger face, "
                  f"{_count(picker.cuts, 'scene cut', 'scene cuts')}; --face N picks another)")
        if interrupted:
            print("interrupted: stopped cleanly" + (f", {rec.frames} frames recorded to {rec.path}" if rec else ""))
        print(f"{n} frames, {found} with a face, {figures['fps']:.1f} FPS ({pipeline.tracker.front_end}, "
              f"{figures['backend']}); ms per frame: "
              + ", ".join(f"{k} {v:.1f}" for k, v in figures["ms_per_frame"].items()))
    return figures
