"""`facetrack bench`: how fast each part runs on this machine, as a table and a JSON file.

Encoder: ms per frame and Hz at batch 1 and batch 32 for every backend this machine has (torch CPU,
TorchScript (trace + freeze), ONNX Runtime in float and 8 bits, torch CUDA in float32 and float16). Image formation per
frame: what the tracker's model stage does (both levels, shading, point-based photometric error), the CPU
rasterizer, and nvdiffrast with CUDA. End to end: the app's headless pipeline on a video.

Timings on shared machines drift, so every run also times a fixed reference, a plain ResNet-18 forward
on a 240x240 image at batch 1 (torch, CPU), and reports each figure as a ratio to it as well. The rows with
targets (MediaPipe, the fit, end to end) are timed in turn with the reference, pair by pair, and give the
median of the pairs' ratios: on a busy machine the reference alone ranged 36-85 ms within one run, and a ratio
of two figures timed minutes apart moved by a third from run to run.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from facetrack.app.packets import INFERENCE_THREADS, WINDOW_NEEDS
from facetrack.evaluation.hardware import machine
from facetrack.model.correspondence import N_CANONICAL
from facetrack.model.layout import ParamLayout
from facetrack.net.encoder import Encoder
from facetrack.net.weights import ENCODER_INT8, Weights
from facetrack.render.camera import CROP_SIZE
from facetrack.render.reconstruction import NOTHING
from facetrack.track.pipeline import RECORDING_NEEDS, landmark_thread_pays
from facetrack.track.tracker import Tracker

BATCHES = (1, 32)


def time_ms(fn: Callable[[], object], min_runs: int = 5, min_seconds: float = 1.0, warmup: int = 2,
            sync: Callable[[], None] | None = None) -> float:
    """Median wall time of fn() in milliseconds over at least `min_runs` runs and `min_seconds`."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(1e3 * (time.perf_counter() - t0))
        if len(times) >= 200:
            break
    return statistics.median(times)


def _row(part: str, backend: str, batch: int, ms: float, ref: float, pairs: list[tuple[float, float]] | None = None,
         **extra) -> dict:
    """One table row: milliseconds per frame, Hz, and the ratio to the reference; with `pairs` (this row's ms,
    the reference's ms, timed in turn) the median of their ratios."""
    row = {"part": part, "backend": backend, "batch": batch, "ms_per_frame": ms, "hz": 1e3 / ms,
           "ratio_to_reference": ms / ref}
    if pairs:
        row["paired_ratios"] = [a / b for a, b in pairs]
        row["paired_reference_ms"] = [b for _, b in pairs]
        row["ratio_to_reference"] = float(np.median(row["paired_ratios"]))
    return {**row, **extra}


def _paired_row(part: str, backend: str, batch: int, pairs: list[tuple[float, float]], ref: float, **extra) -> dict:
    """A row timed in turn with the reference (`time_paired`): its ms is the median of the pairs' own ms."""
    return _row(part, backend, batch, float(np.median([ms for ms, _ in pairs])), ref, pairs, **extra)


def _crops(batch: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (batch, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)


@functools.cache
def reference_forward(device: str = "cpu") -> Callable[[], None]:
    """The fixed yardstick: ResNet-18 (this package's, random weights) on one 240x240 image; one forward a call."""
    torch.manual_seed(0)
    net = Encoder(ParamLayout(), "resnet18").to(device).eval()
    x = torch.rand(1, 3, CROP_SIZE, CROP_SIZE, device=device)

    def forward() -> None:
        with torch.inference_mode():
            net(x)
        if device == "cuda":
            torch.cuda.synchronize()

    return forward


def reference_ms(device: str = "cpu") -> float:
    return time_ms(reference_forward(device))


def reference_sample(runs: int = 5) -> float:
    """The CPU reference now: the median of a few forwards (a pair's second half)."""
    return time_ms(reference_forward("cpu"), min_runs=runs, min_seconds=0.0, warmup=0)


PAIRS = 11


def time_paired(fn: Callable[[], object], pairs: int = PAIRS, runs: int = 5) -> list[tuple[float, float]]:
    """fn and the CPU reference in turn, `pairs` times (fn first in every other pair, so that a trend in the
    machine's speed favours neither): per pair, fn's median ms over `runs` calls and the reference's median."""
    fn()
    reference_sample(1)
    out = []
    for k in range(pairs):
        if k % 2:
            ref = reference_sample(3)
            ms = time_ms(fn, min_runs=runs, min_seconds=0.0, warmup=0)
        else:
            ms = time_ms(fn, min_runs=runs, min_seconds=0.0, warmup=0)
            ref = reference_sample(3)
        out.append((ms, ref))
    return out


def encoder_backends(tracker: Tracker) -> dict[str, Callable[[np.ndarray], object]]:
    """name -> callable on (B, 240, 240, 3) uint8 crops, for every backend available here."""
    from facetrack.net.runtime import OnnxBackend, TorchBackend

    weights = tracker.weights

    def own_copy(device: str) -> Weights:  # backends move their encoder: each gets its own
        return dataclasses.replace(weights, encoder=copy.deepcopy(weights.encoder).to(device))

    out: dict[str, Callable[[np.ndarray], object]] = {"torch-cpu": TorchBackend(own_copy("cpu"), "cpu")}
    enc = own_copy("cpu").encoder.eval()
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still measured
        traced = torch.jit.freeze(torch.jit.trace(enc, torch.rand(1, 3, CROP_SIZE, CROP_SIZE)))

    def script(crops: np.ndarray):
        with torch.inference_mode():
            return traced(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0)

    out["torchscript-cpu"] = script
    if (weights.folder / "encoder.onnx").is_file():
        out["onnxruntime-cpu"] = OnnxBackend(weights)
    if (weights.folder / ENCODER_INT8).is_file():
        out["onnxruntime-int8-cpu"] = OnnxBackend(weights, int8=True)
    if torch.cuda.is_available():
        out["torch-cuda-fp32"] = TorchBackend(own_copy("cuda"), "cuda")
        half = own_copy("cuda").encoder.half().eval()

        def fp16(crops: np.ndarray):
            with torch.inference_mode():
                x = torch.from_numpy(crops).to("cuda").permute(0, 3, 1, 2).half() / 255.0
                return half(x).float().cpu()

        out["torch-cuda-fp16"] = fp16
    return out


def bench_encoders(tracker: Tracker, ref: float) -> list[dict]:
    rows = []
    for name, fn in encoder_backends(tracker).items():
        sync = torch.cuda.synchronize if "cuda" in name else None
        for b in BATCHES:
            crops = _crops(b)
            rows.append(_row("encoder", name, b, time_ms(lambda fn=fn, crops=crops: fn(crops), sync=sync) / b, ref))
    return rows


def bench_formation(tracker: Tracker, ref: float) -> list[dict]:
    """Per frame: the tracker's model stage (CPU, and CUDA when present), the CPU and CUDA rasterizers."""
    from facetrack.render.formation import views
    from facetrack.render.losses import photometric_l21
    from facetrack.render.raster_gl import GLRasterizer

    model, camera = tracker.model, tracker.camera
    x1 = torch.from_numpy(np.asarray(tracker.backend(_crops(1)))).float()  # one real parameter vector
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        m = model.to(device)
        sync = torch.cuda.synchronize if device == "cuda" else None
        for b in BATCHES:
            x = x1.to(device).expand(b, -1).clone()
            image = torch.rand(b, 3, CROP_SIZE, CROP_SIZE, device=device)

            def stage(x=x, image=image, m=m):
                with torch.inference_mode():
                    p = m.params(x)
                    vb, vf = views(m(p), p, m.triangles, camera)
                    return photometric_l21(image, vb, m.photo_mask), photometric_l21(image, vf, m.photo_mask)

            rows.append(_row("image formation (both levels, point-based photometric)", f"torch-{device}", b,
                             time_ms(stage, sync=sync) / b, ref))
    model.cpu()
    with torch.inference_mode():
        p = model.params(x1)
        vb, _ = views(model(p), p, model.triangles, camera)
    clip = camera.clip(vb.v_cam[0]).numpy()
    colors = vb.color[0].clamp(0, 1).numpy()
    tris = tracker.weights.face.triangles
    raster = GLRasterizer.for_camera(camera, 2)
    try:
        ms = time_ms(lambda: raster.render(clip, tris, colors))
    finally:
        raster.release()
    rows.append(_row("rasterize one level 240x240 (2x supersampled)", "moderngl-egl-cpu", 1, ms, ref))
    if torch.cuda.is_available():
        from facetrack.render.raster_nv import NvdiffrastRasterizer

        nv = NvdiffrastRasterizer(camera.width, camera.height)
        for b in BATCHES:
            c = torch.from_numpy(clip).cuda()[None].expand(b, -1, -1).contiguous()
            col = torch.from_numpy(colors).cuda()[None].expand(b, -1, -1).contiguous()
            t = model.triangles.cuda()
            ms = time_ms(lambda c=c, col=col, t=t: nv(c, t, col), sync=torch.cuda.synchronize) / b
            rows.append(_row("rasterize one level 240x240 (antialiased)", "nvdiffrast-cuda", b, ms, ref))
    return rows


def bench_reconstruction(tracker: Tracker, ref: float) -> list[dict]:
    """The per-frame reconstruction step for what each consumer needs (CPU, batch 1)."""
    x = tracker.backend(_crops(1))[0]
    crop = _crops(1)[0]
    cases = {"landmarks only (run --no-gui)": NOTHING, "both levels (the window)": WINDOW_NEEDS,
             "both levels + photometric error (overlay, recording)": RECORDING_NEEDS}
    return [_row(f"reconstruction step: {name}", "torch-cpu", 1,
                 time_ms(lambda needs=needs: tracker.reconstruct(x, needs, crop)), ref)
            for name, needs in cases.items()]


FIT_FRAMES = 60  # the stretch of stream frames the fit row is timed on, after the calibration


def bench_front_end(tracker: Tracker, video: Path, ref: float) -> list[dict]:
    """The dense landmarker alone on a real frame of the video (whole, and followed as in a stream), and the
    per-frame fit alone on a stretch of its frames as a stream runs them (when MediaPipe runs)."""
    if tracker.dense is None:
        return []
    from facetrack.io.sources import open_source

    frame = next(iter(open_source(str(video))))
    tracker.reset()
    r = tracker(frame.rgb, timestamp=0.0)
    if r is None:
        return []
    whole = time_paired(lambda: tracker.dense(frame.rgb, still=True))
    stamps = iter(range(1, 10**6))  # a 30 FPS stream: the median frame is followed (end to end has the looks too)
    followed = time_paired(lambda: tracker.dense(frame.rgb, next(stamps) / 30))
    rows = [_paired_row("MediaPipe face landmarker, whole frame (detector + 478 points, pose matrix)", "mediapipe-cpu",
                        1, whole, ref),
            _paired_row("MediaPipe landmarks in a stream (followed from the last frame; a frame's median)",
                        "litert-cpu", 1, followed, ref)]
    if tracker.fitter is not None:
        rows += bench_fit(tracker, video, ref)
    rows += bench_appearance(tracker, r.x, r.face.crop, ref)
    tracker.reset()
    return rows


def bench_fit(tracker: Tracker, video: Path, ref: float) -> list[dict]:
    """The fit on consecutive frames of the video after the person's calibration, from the same state each
    pass: every 5th frame adds identity evidence, as in a stream. (One frame fitted over and over would
    converge at once from its own previous answer and read too fast.)"""
    from facetrack.io.sources import open_source

    fitter = tracker.fitter
    inputs = []
    tracker.reset()
    for frame in open_source(str(video)):
        r = tracker(frame.rgb, timestamp=frame.timestamp)
        if r is not None and r.dense is not None:
            inputs.append((tracker.backend(r.face.crop[None])[0], r.face.box.to_crop(r.dense.points[:N_CANONICAL]),
                           r.dense.depth[:N_CANONICAL] * r.face.box.scale))
        if len(inputs) >= fitter.cfg.calibration_frames + FIT_FRAMES:
            break
    calibration, stretch = inputs[: fitter.cfg.calibration_frames], inputs[fitter.cfg.calibration_frames :]
    if not stretch:
        return []
    fitter.reset(keep_identity=False)
    for args in calibration:
        fitter(*args)
    start = copy.deepcopy(fitter.state)
    iterations = []

    def run() -> None:
        fitter.state = copy.deepcopy(start)
        for args in stretch:
            iterations.append(fitter(*args)[1].iterations)

    pairs = [(ms / len(stretch), r) for ms, r in time_paired(run, runs=3)]
    return [_paired_row(f"per-frame fit (pose + 53 expressions, Gauss-Newton), {len(stretch)} stream frames of "
                        f"{video.name} after calibration", "numpy-cpu", 1, pairs, ref,
                        iterations=float(np.mean(iterations)))]


def bench_appearance(tracker: Tracker, x: np.ndarray, crop: np.ndarray, ref: float) -> list[dict]:
    """The window's reconstruction step with the appearance fit on a real frame: a frame that updates the
    person's reflectance (a photo, a stream's calibration frames and keyframes) and any other stream frame
    (the lighting only); compare with the step without it ("both levels (the window)")."""
    app = tracker.appearance
    if app is None:
        return []

    def update():
        app.reset()
        return tracker.reconstruct(x, WINDOW_NEEDS, crop, partial(app, stream=False))

    rows = [_row("reconstruction step: both levels + appearance fit, reflectance update (photo, keyframe)",
                 "numpy-cpu", 1, time_ms(update), ref)]
    update()
    app.state.frames = app.cfg.calibration_frames + 1  # past calibration: the median is a lighting-only frame
    rows.append(_row("reconstruction step: both levels + appearance fit, lighting only (other stream frames)",
                     "numpy-cpu", 1,
                     time_ms(lambda: tracker.reconstruct(x, WINDOW_NEEDS, crop, partial(app, stream=True))), ref))
    app.reset()
    return rows


def bench_pipeline(tracker: Tracker, video: Path, frames: int, ref: float) -> list[dict]:
    """`run --no-gui` as fast as it goes, then the window's own pipeline without the window."""
    from facetrack.io.sources import open_source
    from facetrack.track.pipeline import Pipeline, run_headless

    pipeline = Pipeline(tracker)
    pipeline.reset()
    fig = run_headless(pipeline, open_source(str(video)), None, frames, quiet=True)
    streaming = bench_streaming(pipeline, video, frames, ref, (1e3 / fig["fps"], reference_sample()))
    off = streaming["streaming_off_runs_ms"]  # this run and the streaming row's other runs without streaming
    pairs = list(zip(off, streaming["streaming_off_reference_ms"], strict=True))
    rows = [_paired_row(f"end to end, run --no-gui, on {video.name} ({fig['frames']} frames, median of {len(off)} "
                        "runs)", fig["backend"], 1, pairs, ref, stages_ms=fig["ms_per_frame"], runs_ms=off),
            streaming]
    here = landmark_thread_pays(tracker)
    for staged in (False, True) if tracker.can_look_ahead else (False,):
        pipeline.reset()
        win = window_pipeline(pipeline, video, frames, staged)
        how = "landmark thread + inference thread" if staged else "one inference thread"
        rows.append(_row(f"window pipeline headless, {how}{' (as the window runs here)' if staged == here else ''}, "
                         f"on {video.name} at its frame rate ({win['source_fps']:.0f} FPS): interval between shown "
                         f"frames ({win['frames']} shown)", fig["backend"], 1, win["ms_per_frame"], ref,
                         stages_ms=win["stages_ms"], work_ms=win["work_ms"], latency_ms=win["latency_ms"],
                         latency_ratio_to_reference=win["latency_ms"]["median"] / ref, dropped=win["dropped"],
                         landmark_thread=staged))
    return rows


def bench_streaming(pipeline, video: Path, frames: int, ref: float, first_off: tuple[float, float], pairs: int = 3
                    ) -> dict:
    """`run --no-gui --vmc` to a local UDP port nobody reads (the kernel drops what overflows) against the
    same run without streaming, in turn (off, on, off, on, ...), so that drift in the machine's speed hits
    both alike; the ratio is the median of the pairs' ratios. `first_off`: the first run without streaming, ms per
    frame, and the reference timed right after it, as after every run here."""
    import socket

    from facetrack.io.sources import open_source
    from facetrack.io.streaming import Streamer, StreamTarget
    from facetrack.track.pipeline import run_headless

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    target = StreamTarget("vmc", "127.0.0.1", sink.getsockname()[1])
    on, off, sent = [], [first_off[0]], 0
    on_ref, off_ref = [], [first_off[1]]
    try:
        for k in range(pairs):
            pipeline.reset()
            streamer = Streamer(target, pipeline.model.exp_names)
            fig = run_headless(pipeline, open_source(str(video)), None, frames, quiet=True, streamer=streamer)
            on.append(1e3 / fig["fps"])
            on_ref.append(reference_sample())
            sent += fig["stream"]["bundles"]
            if k < pairs - 1:
                pipeline.reset()
                off.append(1e3 / run_headless(pipeline, open_source(str(video)), None, frames, quiet=True)["fps"])
                off_ref.append(reference_sample())
    finally:
        sink.close()
    ratios = [a / b for a, b in zip(on, off, strict=True)]
    return _paired_row(f"end to end with VMC streaming on, on {video.name} ({frames} frames, {pairs} runs)",
                       pipeline.tracker.backend.name, 1, list(zip(on, on_ref, strict=True)), ref,
                       streaming_off_ms=float(np.median(off)), streaming_off_runs_ms=off,
                       streaming_off_reference_ms=off_ref, ratio_to_streaming_off=float(np.median(ratios)),
                       ratios=ratios, bundles_sent=sent)


def window_pipeline(pipeline, video: Path, frames: int, staged: bool) -> dict:
    """The window's packet path without Qt: a capture thread paces the video at its own rate into the one-slot
    mailbox; with `staged`, the landmark thread (`LandmarkStage`) finds the face in the newest frame; this
    thread takes the newest (sighted) frame, runs the rest of the pipeline with the window's needs,
    builds the packet and uploads it into a GL vertex buffer and texture (EGL, as the viewport would).
    Figures: the shown frames' rate and interval, this thread's work per frame, the frames dropped as stale
    at either mailbox, and latency from capture to uploaded."""
    import threading

    import moderngl

    from facetrack.app.packets import VERTEX_FLOATS, make_packet
    from facetrack.io.sources import open_source, paced
    from facetrack.track.pipeline import LandmarkStage, LatestFrame

    source = open_source(str(video))
    captured_box, sighted_box, done = LatestFrame(), LatestFrame(), threading.Event()
    mailbox = sighted_box if staged else captured_box
    landmarks = LandmarkStage(pipeline.tracker, captured_box, sighted_box) if staged else None

    def capture() -> None:
        for k, frame in enumerate(paced(source)):
            if k >= frames:
                break
            captured_box.put((frame, time.monotonic()))
        done.set()

    ctx = moderngl.create_standalone_context(backend="egl")
    vbo = ctx.buffer(reserve=pipeline.model.n_vertices * VERTEX_FLOATS * 4, dynamic=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(INFERENCE_THREADS)  # as the app's inference thread runs
    blas = threadpool_limits(limits=INFERENCE_THREADS, user_api="blas")
    texture = None
    stages: dict[str, list[float]] = {}
    latency, work, shown = [], [], []
    thread = threading.Thread(target=capture, daemon=True)
    if landmarks is not None:
        landmarks.start()
    thread.start()
    try:
        idle = 0.0
        while idle < 0.5:  # the capture is done and nothing has come through for half a second
            item = mailbox.take()
            if item is None:
                time.sleep(0.001)
                idle = idle + 0.001 if done.is_set() else 0.0
                continue
            idle = 0.0
            frame, captured, *sighted = item
            t0 = time.perf_counter()
            r = pipeline(frame, WINDOW_NEEDS, sighted[0] if sighted else None)
            t1 = time.perf_counter()
            pk = make_packet(frame, captured, r, pipeline.camera)
            t2 = time.perf_counter()
            h, w = frame.rgb.shape[:2]
            if texture is None:
                texture = ctx.texture((w, h), 3, alignment=1)
            texture.write(frame.rgb)
            for mesh in pk.meshes.values():
                vbo.write(mesh)
            ctx.finish()
            t3 = time.perf_counter()
            shown.append(time.monotonic())
            latency.append(1e3 * (shown[-1] - captured))
            work.append(1e3 * (t3 - t0))
            for k, v in {**(r.ms if r else {}), "packet": 1e3 * (t2 - t1), "upload": 1e3 * (t3 - t2)}.items():
                stages.setdefault(k, []).append(v)
    finally:
        if landmarks is not None:
            landmarks.stop()
        torch.set_num_threads(threads)
        blas.restore_original_limits()
        thread.join()
        ctx.release()
    lat = np.asarray(latency)
    interval = float(np.mean(np.diff(shown))) * 1e3 if len(shown) > 1 else float("nan")
    return {"frames": len(work), "ms_per_frame": interval, "work_ms": float(np.mean(work)),
            "source_fps": source.fps, "dropped": captured_box.dropped + (sighted_box.dropped if staged else 0),
            "stages_ms": {k: float(np.mean(v)) for k, v in stages.items()},
            "latency_ms": {"median": float(np.median(lat)), "p90": float(np.percentile(lat, 90))}}


def run_bench(tracker: Tracker, video: Path | None, frames: int = 150) -> dict:
    """The reference is timed before and after each group of rows and the ratios use the median: one sample
    caught a busy moment of a shared machine once (55 against 29-31 ms), which halved every ratio of that run."""
    refs = [reference_ms("cpu")]
    groups = [lambda r: bench_encoders(tracker, r), lambda r: bench_formation(tracker, r),
              lambda r: bench_reconstruction(tracker, r)]
    if video is not None:
        groups += [lambda r: bench_front_end(tracker, video, r), lambda r: bench_pipeline(tracker, video, frames, r)]
    rows = []
    for group in groups:
        rows += group(refs[0])
        refs.append(reference_ms("cpu"))
    ref = statistics.median(refs)
    for r in rows:  # the groups saw the first sample: their ratios move to the median (paired rows keep theirs)
        if "paired_ratios" not in r:
            r["ratio_to_reference"] = r["ms_per_frame"] / ref
        if "latency_ratio_to_reference" in r:
            r["latency_ratio_to_reference"] = r["latency_ms"]["median"] / ref
    doc = {"machine": machine(), "front_end": tracker.front_end,
           "reference": {"what": "ResNet-18 forward, 240x240, batch 1, torch eager, CPU", "ms": ref,
                         "samples_ms": refs}}
    if torch.cuda.is_available():
        doc["reference"]["cuda_ms"] = reference_ms("cuda")
    doc["rows"] = rows
    return doc


def table(doc: dict) -> str:
    """The rows as a Markdown table."""
    lines = [f"reference: {doc['reference']['what']}: {doc['reference']['ms']:.2f} ms",
             f"front end: {doc.get('front_end', '-')}", "",
             "x reference: the row's median ms over the reference's; rows marked * give the median ratio of "
             "pairs timed in turn with the reference", "",
             "| part | backend | batch | ms per frame | Hz | x reference |", "| --- | --- | --- | --- | --- | --- |"]
    for r in doc["rows"]:
        lines.append(f"| {r['part']} | {r['backend']} | {r['batch']} | {r['ms_per_frame']:.2f} | {r['hz']:.0f} | "
                     f"{r['ratio_to_reference']:.3f}{' *' if 'paired_ratios' in r else ''} |")
    for r in doc["rows"]:
        if "stages_ms" in r:
            lines += ["", f"{r['part']}, ms per frame by stage: "
                      + ", ".join(f"{k} {v:.2f}" for k, v in r["stages_ms"].items())]
        if "latency_ms" in r:
            lines += [f"inference thread's work per shown frame: {r['work_ms']:.1f} ms; "
                      f"capture-to-display latency: median {r['latency_ms']['median']:.1f} ms "
                      f"(x{r['latency_ratio_to_reference']:.2f} reference), 90th percentile "
                      f"{r['latency_ms']['p90']:.1f} ms; frames dropped as stale: {r['dropped']}"]
    return "\n".join(lines)


def write_bench(doc: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    out.with_suffix(".md").write_text("# facetrack bench\n\n" + table(doc) + "\n")
