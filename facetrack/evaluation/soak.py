"""`facetrack soak`: track a video in a loop for a long time and print memory and speed as it goes.

Not a test: it answers "does a long session leak or slow down?" The same tracker runs through the video
again and again (a new shot each loop, as a cut would be), with a recording written as in a real session
(to a temporary file, deleted at the end), and every `every` seconds a line gives elapsed time, frames,
FPS over the interval and the resident memory (RSS, from /proc on Linux; the peak from getrusage elsewhere).
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from facetrack.io.sources import open_source
from facetrack.track.pipeline import RECORDING_NEEDS, Pipeline, frames_ahead, record


def rss_mb() -> float:
    """Resident memory now (Linux), else the peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def soak(pipeline: Pipeline, video: Path, minutes: float, every: float = 60.0, out: Path | None = None) -> dict:
    samples, start = [], time.monotonic()
    frames = loops = 0
    last_t, last_frames = start, 0
    with tempfile.TemporaryDirectory() as tmp:
        source = open_source(str(video))
        rec = pipeline.recorder(Path(tmp) / "soak.ftrec", source)
        try:
            while time.monotonic() - start < minutes * 60:
                pipeline.reset()
                for frame, ahead in frames_ahead(pipeline, open_source(str(video))):
                    r = pipeline(frame, RECORDING_NEEDS, ahead)
                    if r is not None:
                        record(rec, frame, r)
                    frames += 1
                    now = time.monotonic()
                    if now - last_t >= every:
                        s = {"elapsed_s": round(now - start, 1), "frames": frames, "loops": loops,
                             "fps": round((frames - last_frames) / (now - last_t), 2), "rss_mb": round(rss_mb(), 1)}
                        samples.append(s)
                        print(f"{s['elapsed_s']:8.0f} s  {frames:7d} frames  {s['fps']:6.1f} FPS  "
                              f"{s['rss_mb']:7.1f} MB", flush=True)
                        last_t, last_frames = now, frames
                    if now - start >= minutes * 60:
                        break
                loops += 1
        except KeyboardInterrupt:
            print("interrupted")
        finally:
            rec.close()
    growth = samples[-1]["rss_mb"] - samples[0]["rss_mb"] if len(samples) > 1 else None
    doc = {"video": str(video), "minutes": minutes, "frames": frames, "loops": loops, "samples": samples,
           "rss_growth_mb_first_to_last": growth, "front_end": pipeline.tracker.front_end}
    if growth is not None:
        print(f"{frames} frames in {loops} loops; memory {samples[0]['rss_mb']:.1f} -> {samples[-1]['rss_mb']:.1f} MB "
              f"({growth:+.1f} MB); FPS {samples[0]['fps']:.1f} -> {samples[-1]['fps']:.1f}")
    if out is not None:
        out.write_text(json.dumps(doc, indent=1))
    return doc
