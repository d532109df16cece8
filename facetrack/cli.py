"""`facetrack` command line: a thin layer over the library; expected failures print one line, exit 2."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from facetrack import paths
from facetrack.errors import FacetrackError


def _model_build(args: argparse.Namespace) -> None:
    from facetrack.model.ict import build_from_ict

    folder = paths.ict_dir(args.ict)
    out = Path(args.out) if args.out else paths.model_path()
    face = build_from_ict(folder, reflectance_modes=args.reflectance_modes)
    face.save(out)
    print(f"wrote {out} ({face.n_vertices} vertices, {face.triangles.shape[0]} triangles)")


def _model_info(args: argparse.Namespace) -> None:
    from facetrack.model.facemodel import FaceModel

    info = FaceModel.load(Path(args.model) if args.model else None).info()
    if args.json:
        print(json.dumps(info, indent=1))
        return
    names = info.pop("expression_names")
    for key, value in info.items():
        print(f"{key:28s} {value}")
    print(f"{'expression_names':28s} {' '.join(names)}")


def _model_correspond(args: argparse.Namespace) -> None:
    from facetrack.model.correspondence import DATA_FILE, build
    from facetrack.model.facemodel import FaceModel

    face = FaceModel.load(Path(args.model) if args.model else None)
    out = Path(args.out) if args.out else DATA_FILE
    corr = build(face, Path(args.canonical))
    if args.synthetic or args.refine:
        from facetrack.net.weights import load_weights
        from facetrack.track.correspond import refine_on_synthetic, refine_on_videos

        landmarker = paths.landmarker_model(args.landmarker)
        if landmarker is None:
            raise FacetrackError("refining needs the MediaPipe landmarker: --landmarker FILE or FACETRACK_LANDMARKER")
        weights = load_weights(paths.weights_dir(args.weights), face)
        if args.synthetic:
            bg = Path(args.backgrounds) if args.backgrounds else paths.shared_file("faces", "utkface")
            corr = refine_on_synthetic(weights, face, landmarker, args.synthetic, bg, corr)
    corr.save(out)
    if args.refine:
        corr = refine_on_videos(weights, face, landmarker, [Path(v) for v in args.refine], out=out)
    print(f"wrote {out}: {corr.source}")


def _model_render(args: argparse.Namespace) -> None:
    from facetrack.model.facemodel import FaceModel
    from facetrack.render.gallery import render_gallery

    face = FaceModel.load(Path(args.model) if args.model else None)
    for path in render_gallery(face, Path(args.out), seed=args.seed):
        print(path)


def _synth(args: argparse.Namespace) -> None:
    from facetrack.model.facemodel import FaceModel
    from facetrack.render.synthetic import SynthConfig, generate

    face = FaceModel.load(Path(args.model) if args.model else None)
    bg = Path(args.backgrounds) if args.backgrounds else None
    ranges = {a: getattr(args, a) for a in ("yaw", "pitch", "roll") if getattr(args, a) is not None}
    out = generate(face, Path(args.out), args.n, bg, SynthConfig(seed=args.seed, **ranges))
    print(f"wrote {args.n} samples to {out}")


def _tracker(args: argparse.Namespace, weights: Path | None = None, mediapipe_scores: bool = False):
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights
    from facetrack.track.head import SOURCE_VFOV_DEG
    from facetrack.track.tracker import Tracker

    face = FaceModel.load(Path(args.model) if args.model else None)
    return Tracker(load_weights(weights or paths.weights_dir(args.weights), face), backend=args.backend,
                   landmarker=paths.landmarker_model(args.landmarker), fit=not args.no_fit,
                   smooth=not args.no_smooth, face_rank=args.face, mediapipe_scores=mediapipe_scores,
                   source_vfov_deg=getattr(args, "fov", None) or SOURCE_VFOV_DEG)


def _run(args: argparse.Namespace) -> int:
    from facetrack.track.pipeline import Pipeline

    record = Path(args.record) if args.record else None
    target = _stream_target(args)
    pipeline = Pipeline(_tracker(args))
    if args.no_gui:
        from facetrack.io.sources import open_source
        from facetrack.io.streaming import Streamer
        from facetrack.track.pipeline import run_headless

        streamer = Streamer(target, pipeline.model.exp_names) if target else None
        source = open_source(args.source)
        try:
            figures = run_headless(pipeline, source, record, args.max_frames, streamer=streamer)
        finally:
            if args.verbose:
                for path, why in getattr(source, "skipped", []):
                    print(f"skipped {path}: {why}")
        return 130 if figures["interrupted"] else 0
    from facetrack.app.main import run_gui

    return run_gui(pipeline, args.source, record, target)


def _stream_target(args: argparse.Namespace):
    """The --vmc or --osc target, or None; both at once is an error."""
    from facetrack.io.streaming import StreamTarget

    if args.vmc and args.osc:
        raise FacetrackError("choose one stream: --vmc or --osc")
    if args.neutral and not (args.vmc or args.osc):
        raise FacetrackError("--neutral takes the neutral face of a stream: add --vmc or --osc")
    if args.vmc:
        return StreamTarget.parse("vmc", args.vmc, args.neutral)
    return StreamTarget.parse("osc", args.osc, args.neutral) if args.osc else None


def _play(args: argparse.Namespace) -> None:
    from facetrack.app.main import play_gui
    from facetrack.track.pipeline import Pipeline

    if not Path(args.file).is_file():
        raise FacetrackError(f"recording not found: {args.file}")
    play_gui(Pipeline(_tracker(args)), Path(args.file), _stream_target(args))


def _reconstruct(args: argparse.Namespace) -> None:
    from facetrack.io.exports import write_photo_outputs
    from facetrack.render.raster_gl import GLRasterizer
    from facetrack.render.reconstruction import LEVELS, Needs
    from facetrack.track.photos import photo_outcomes

    tracker = _tracker(args)
    raster = GLRasterizer(tracker.camera.width, tracker.camera.height, supersample=2)
    done, out = 0, Path(args.out)
    try:
        for o in photo_outcomes(tracker, [Path(p) for p in args.images], Needs(frozenset(LEVELS), True)):
            if o.problem:
                print(f"{o.path}: {o.problem}, skipped")
                continue
            dest = out / o.path.stem
            write_photo_outputs(dest, tracker.model, tracker.camera, raster, o.result, o.rgb)
            photo = o.result.photometric
            print(f"{o.path}: photometric base {photo['base']:.4f} final {photo['final']:.4f} -> {dest}")
            done += 1
    finally:
        raster.release()
    if done == 0:
        raise FacetrackError("no face found in any image")


def _export(args: argparse.Namespace) -> None:
    from facetrack.io.recording import read_recording

    if not (args.csv or args.livelink_csv or args.gltf or args.obj_seq):
        raise FacetrackError("say what to write: --csv, --livelink-csv, --gltf or --obj-seq")
    rec = read_recording(Path(args.file))
    if rec.problems():
        print(f"{args.file}: {rec.problems()}")

    def left_out(n: int) -> str:
        return f" ({n} frames without a face left out)" if n else ""

    if args.csv:
        from facetrack.io.exports import export_csv
        from facetrack.model.correspondence import Correspondence

        export_csv(rec, Path(args.csv), Correspondence.load().head_frame)
        print(f"wrote {len(rec)} frames to {args.csv} (face_present column says which had a face)")
    if args.livelink_csv:
        from facetrack.io.livelink import export_livelink_csv
        from facetrack.model.correspondence import Correspondence

        n, skipped = export_livelink_csv(rec, Path(args.livelink_csv), Correspondence.load().head_frame)
        print(f"wrote {n} frames to {args.livelink_csv} (Live Link Face CSV){left_out(skipped)}")
    if args.gltf or args.obj_seq:
        model = _model_for(args, rec)
        if args.gltf:
            from facetrack.io.gltf import export_gltf

            n, skipped = export_gltf(rec, model, Path(args.gltf))
            print(f"wrote {args.gltf}: mesh, {model.layout.n_exp} morph targets, {n} keyframes{left_out(skipped)}")
        if args.obj_seq:
            from facetrack.io.exports import export_obj_sequence

            n, skipped = export_obj_sequence(rec, model, Path(args.obj_seq))
            print(f"wrote {n} meshes to {args.obj_seq}{left_out(skipped)}")


def _model_for(args: argparse.Namespace, rec):
    """The multi-level model (with the weights' correctives) that the recording's parameters belong to."""
    from facetrack.model.facemodel import FaceModel
    from facetrack.net.weights import load_weights

    face = FaceModel.load(Path(args.model) if args.model else None)
    model = load_weights(paths.weights_dir(args.weights), face).model.cpu().eval()
    size = sum(int(s) for name, s in rec.header["fields"] if name in ("delta_g", "delta_r"))
    if size != model.layout.n_cg + model.layout.n_cr:
        raise FacetrackError("the recording was made with other weights (corrective sizes differ): pass them "
                             "with --weights DIR")
    return model


def _eval(args: argparse.Namespace) -> None:
    from facetrack.evaluation.report import model_labels, write_report

    levels = ("base", "final") if args.level == "both" else (args.level,)
    folders = [paths.weights_dir(w) for w in (args.weights or [None])]
    out = Path(args.out or f"eval-{args.kind}")
    run, inputs = _eval_kind(args, levels, out)
    reports = {}
    for label, folder in zip(model_labels(folders), folders, strict=True):
        reports[label] = run(_tracker(args, folder, mediapipe_scores=args.kind == "video"))
        print(f"{label}: {_eval_summary(args.kind, reports[label])}")
    write_report(reports, out, f"facetrack eval {args.kind}", {**inputs, "weights": [str(f) for f in folders]})
    print(f"wrote {out / 'report.json'} and {out / 'report.md'}")


def _eval_kind(args: argparse.Namespace, levels: tuple[str, ...], out: Path):
    """The evaluation to run per model, and the inputs it names in the report."""
    if args.kind == "synthetic":
        from facetrack.evaluation.synthetic import eval_synthetic

        bg = Path(args.backgrounds) if args.backgrounds else paths.shared_file("faces", "utkface")
        return (lambda t: eval_synthetic(t, args.n, args.seed, bg, levels, args.gain_faces),
                {"n": args.n, "seed": args.seed, "backgrounds": str(bg), "gain_faces": args.gain_faces})
    if len(args.inputs) != 1 and args.kind in ("images", "landmarks"):
        raise FacetrackError(f"eval {args.kind} takes one folder")
    if args.kind == "images":
        from facetrack.evaluation.images import eval_images, image_files

        files = image_files(Path(args.inputs[0]), args.split, args.limit)
        if not files:
            raise FacetrackError(f"no images in {args.inputs[0]} (split {args.split})")
        return (lambda t: eval_images(t, files, levels, not args.no_identity,
                                      out / f"examples-{t.weights.folder.name}.png"),
                {"folder": args.inputs[0], "split": args.split, "limit": args.limit})
    if args.kind == "landmarks":
        from facetrack.evaluation.landmarks import eval_landmarks

        return lambda t: eval_landmarks(t, Path(args.inputs[0]), levels, args.limit), {"folder": args.inputs[0]}
    from facetrack.evaluation.video import eval_video

    if not args.inputs:
        raise FacetrackError("eval video takes one or more video files")
    if args.degrade:
        from facetrack.evaluation.degrade import Degradation

        Degradation(args.degrade)  # an unknown name is a one-line error before anything runs
    return (lambda t: eval_video(t, [Path(p) for p in args.inputs], args.limit, args.still, args.degrade),
            {"videos": args.inputs, "max_frames": args.limit, "still": args.still, "degrade": args.degrade})


def _eval_summary(kind: str, r: dict) -> str:
    def levels(node: dict, key: str | None = None) -> str:
        return ", ".join(f"{lv} {(v[key] if key else v):.4g}" for lv, v in node.items()
                         if (v[key] if key else v) is not None)

    if kind == "synthetic":
        return (f"{r['found']}/{r['faces']} faces found; vertex error mm (mean): {levels(r['vertex_error_mm'], 'mean')}"
                f"; rotation error {r['rotation_error_deg'].get('mean', float('nan')):.1f} deg")
    if kind == "images":
        ident = f"; identity cosine {levels(r['identity_cosine'])}" if "identity_cosine" in r else ""
        return (f"{r['found']}/{r['photos']} faces found; photometric error per pixel: "
                f"{levels(r['photometric_error'], 'face_mean')}{ident}")
    if kind == "landmarks":
        conv = {k: v["all"] for k, v in r["nme_dataset_convention"].items() if v}
        conv_s = f"; in the dataset's convention {levels(conv)}" if conv else ""
        return (f"{r['found']}/{r['annotations']} faces found; NME {levels({k: v['all'] for k, v in r['nme'].items()})}"
                f" (raw landmarks {_num(r['reference_dlib_nme']['all'])}){conv_s}; "
                f"pose MAE {_num(r['pose_mae_deg']['mean'])} deg")
    resp = r.get("responsiveness") or {}
    ours, peer = resp.get("ours", {}), resp.get("mediapipe_blendshapes", {})
    rs = "; ".join(f"r({k}) ours {_num(ours.get('r_' + k))} / MediaPipe {_num(peer.get('r_' + k))}"
                   for k in ("jawOpen", "eyeBlink_L", "eyeBlink_R"))
    photo = r.get("photometric_error") or {}
    return (f"{r['frames']} frames, success {r['success_rate']:.3f}; jitter (face sizes per frame) "
            f"ours {_num(r['jitter']['ours'])} vs raw dlib {_num(r['jitter']['dlib_raw'])}; {rs}; photometric "
            f"error base {_num(photo.get('base'))}, final {_num(photo.get('final'))}")


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _bench(args: argparse.Namespace) -> None:
    from facetrack.evaluation.bench import run_bench, table, write_bench

    video = Path(args.video) if args.video else paths.shared_file("videos", "liveportrait_d0.mp4")
    if video is not None and not video.is_file():
        raise FacetrackError(f"video not found: {video}")
    if video is None:
        print("no video given (--video or $FACETRACK_SHARED): end-to-end figures skipped")
    doc = run_bench(_tracker(args), video, args.frames)
    print(table(doc))
    out = Path(args.out)
    write_bench(doc, out)
    print(f"wrote {out} and {out.with_suffix('.md')}")


def _soak(args: argparse.Namespace) -> None:
    from facetrack.evaluation.soak import soak
    from facetrack.track.pipeline import Pipeline

    video = Path(args.video)
    if not video.is_file():
        raise FacetrackError(f"video not found: {video}")
    soak(Pipeline(_tracker(args)), video, args.minutes, args.every, Path(args.out) if args.out else None)


def _add_tracking_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="weights folder (default: $FACETRACK_WEIGHTS or weights/)")
    p.add_argument("--model", help="face model file (default: the user cache)")
    _add_front_end_args(p)


def _add_front_end_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "torch", "onnx", "onnx-int8"], default="auto",
                   help="encoder runtime (default auto: torch on CUDA, else the 8-bit ONNX encoder when the weights "
                   "have it, else the float one)")
    p.add_argument("--landmarker", help="MediaPipe face_landmarker.task (default: $FACETRACK_LANDMARKER; without "
                   "it dlib's 68 landmarks and the encoder alone run)")
    p.add_argument("--no-fit", action="store_true", help="encoder only: no per-frame fit to the dense landmarks")
    p.add_argument("--no-smooth", action="store_true", help="no One-Euro filtering of pose and expressions")
    p.add_argument("--face", type=positive_int, default=1, metavar="N",
                   help="with several faces, track the N-th largest (default 1: the largest)")


def _number(kind: type, low: float, what: str):
    """An argparse type: a number of `kind` that is at least `low` (argparse prints the one-line error)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value >= low:  # also false for NaN
            raise argparse.ArgumentTypeError(f"{text} must be {what}")
        return value
    parse.__name__ = kind.__name__
    return parse


positive_int = _number(int, 1, "at least 1")
non_negative_int = _number(int, 0, "0 or more")
positive_float = _number(float, 1e-12, "above 0")


def field_of_view(text: str) -> float:
    """An argparse type: a field of view in degrees, above 0 and below 180."""
    value = positive_float(text)
    if not value < 180:
        raise argparse.ArgumentTypeError(f"{text} must be below 180 degrees")
    return value


def _add_stream_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vmc", nargs="?", const="127.0.0.1:39539", metavar="HOST:PORT",
                   help="stream to a VMC receiver (VSeeFace, VNyan, Warudo; default 127.0.0.1:39539)")
    p.add_argument("--osc", metavar="HOST:PORT", help="stream plain OSC (README: Streaming, for the addresses)")
    p.add_argument("--neutral", type=positive_float, default=0.0, metavar="SECONDS",
                   help="the stream's neutral face from its first SECONDS of tracked frames: then each expression "
                        "reads 0 where it rested (an avatar's eyes open at rest; README: Streaming)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facetrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="build, inspect and render the face model").add_subparsers(
        dest="action", required=True)
    build = model.add_parser("build", help="import an ICT-FaceKit FaceXModel folder into the user cache")
    build.add_argument("--ict", help="FaceXModel folder (default: $FACETRACK_ICT)")
    build.add_argument("--out", help=f"model file (default: $FACETRACK_HOME/{paths.MODEL_FILENAME})")
    build.add_argument("--reflectance-modes", type=positive_int, default=80, help="size of the reflectance space")
    build.set_defaults(func=_model_build)
    info = model.add_parser("info", help="print the model's counts")
    info.add_argument("--model", help="model file (default: the user cache)")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_model_info)
    corr = model.add_parser("correspond", help="map MediaPipe's 468 landmarks onto the ICT surface")
    corr.add_argument("--canonical", required=True, help="MediaPipe's canonical_face_model.obj")
    corr.add_argument("--synthetic", type=non_negative_int, default=0, metavar="N",
                      help="refine on N synthetic ICT faces with exact geometry (needs the landmarker)")
    corr.add_argument("--backgrounds", help="photo folder behind the synthetic faces (default: "
                      "$FACETRACK_SHARED/faces/utkface)")
    corr.add_argument("--refine", nargs="*", help="videos to refine the inner-lip points on (needs the landmarker)")
    corr.add_argument("--landmarker", help="face_landmarker.task (default: $FACETRACK_LANDMARKER)")
    corr.add_argument("--weights", help="weights folder for the encoder's first guess")
    corr.add_argument("--model")
    corr.add_argument("--out", help="output .npz (default: the file shipped in the package)")
    corr.set_defaults(func=_model_correspond)
    render = model.add_parser("render", help="render PNGs of the mean face, an identity, expressions, lights")
    render.add_argument("--out", required=True)
    render.add_argument("--model")
    render.add_argument("--seed", type=non_negative_int, default=0)
    render.set_defaults(func=_model_render)

    synth = sub.add_parser("synth", help="render synthetic faces with exact ground truth")
    synth.add_argument("--out", required=True)
    synth.add_argument("-n", type=positive_int, default=300)
    synth.add_argument("--backgrounds", help="folder of real photos to render over")
    synth.add_argument("--seed", type=non_negative_int, default=0)
    for axis in ("yaw", "pitch", "roll"):
        synth.add_argument(f"--{axis}", type=float, help=f"head {axis} drawn uniformly from +-this many degrees "
                           "(default: render.synthetic.SynthConfig)")
    synth.add_argument("--model")
    synth.set_defaults(func=_synth)

    run = sub.add_parser("run", help="track a camera, video or image folder")
    run.add_argument("--source", default="0", help="camera index, video file or image folder")
    run.add_argument("--record", help="write a .ftrec recording")
    run.add_argument("--no-gui", action="store_true", help="process as fast as possible and print FPS")
    run.add_argument("--max-frames", type=positive_int)
    run.add_argument("--verbose", action="store_true", help="list every skipped file of an image folder")
    run.add_argument("--fov", type=field_of_view, metavar="DEGREES",
                     help="the camera's or video's vertical field of view, for the head pose in its frame (streams, "
                          "plots, recordings; default: 63, what MediaPipe assumes)")
    _add_stream_args(run)
    _add_tracking_args(run)
    run.set_defaults(func=_run)

    rec = sub.add_parser("reconstruct", help="per image: parameters, landmarks, renders, mask, mesh")
    rec.add_argument("images", nargs="+")
    rec.add_argument("--out", required=True)
    _add_tracking_args(rec)
    rec.set_defaults(func=_reconstruct)

    play = sub.add_parser("play", help="replay a recording into the viewport")
    play.add_argument("file")
    _add_stream_args(play)
    _add_tracking_args(play)
    play.set_defaults(func=_play)

    ev = sub.add_parser("eval", help="accuracy figures: synthetic faces, photos, AFLW2000-3D landmarks, videos")
    ev.add_argument("kind", choices=["synthetic", "images", "landmarks", "video"])
    ev.add_argument("inputs", nargs="*", help="images: a photo folder; landmarks: an AFLW2000-3D style folder; "
                    "video: video files")
    ev.add_argument("--level", choices=["base", "final", "both"], default="both")
    ev.add_argument("--out", help="report folder (default: eval-KIND)")
    ev.add_argument("--weights", action="append", help="weights folder; repeat to compare models side by side")
    ev.add_argument("--model", help="face model file (default: the user cache)")
    _add_front_end_args(ev)
    ev.add_argument("--limit", type=positive_int,
                    help="images, landmarks: first N files; video: first N frames per video")
    ev.add_argument("--n", type=positive_int, default=300, help="synthetic: number of faces")
    ev.add_argument("--seed", type=non_negative_int, default=0, help="synthetic: the set's seed")
    ev.add_argument("--backgrounds", help="synthetic: photos to render over (default: $FACETRACK_SHARED/faces/utkface)")
    ev.add_argument("--gain-faces", type=non_negative_int, default=20,
                    help="synthetic: faces that measure how much of each shape the landmarker shows (0: none)")
    ev.add_argument("--split", choices=["all", "val", "train"], default="all",
                    help="images: keep one side of train.prepare's split (val = held out from training)")
    ev.add_argument("--no-identity", action="store_true", help="images: skip the face-recognition embeddings")
    ev.add_argument("--still", type=positive_float, default=0.002,
                    help="video: motion (face sizes per frame) below which a segment counts as still")
    ev.add_argument("--degrade", metavar="{dim,small,blur}",
                    help="video: track frames made worse (dim and noisy; shrunk to 0.3x; motion-blurred and "
                    "compressed); the reference reads the clean frames")
    ev.set_defaults(func=_eval)

    bench = sub.add_parser("bench", help="speed of the encoder backends, image formation and the whole pipeline")
    bench.add_argument("--video", help="video for the end-to-end figure (default: "
                       "$FACETRACK_SHARED/videos/liveportrait_d0.mp4)")
    bench.add_argument("--frames", type=positive_int, default=150, help="frames of the video to process")
    bench.add_argument("--out", default="bench.json", help="JSON file (a Markdown table is written beside it)")
    _add_tracking_args(bench)
    bench.set_defaults(func=_bench)

    so = sub.add_parser("soak", help="track a video in a loop for a long time, printing memory and FPS")
    so.add_argument("video")
    so.add_argument("--minutes", type=positive_float, default=30.0)
    so.add_argument("--every", type=positive_float, default=60.0, help="seconds between lines")
    so.add_argument("--out", help="JSON file for the samples")
    _add_tracking_args(so)
    so.set_defaults(func=_soak)

    exp = sub.add_parser("export", help="convert a recording")
    exp.add_argument("file")
    exp.add_argument("--csv", help="output CSV, one row per frame, every field")
    exp.add_argument("--livelink-csv", help="output CSV in Live Link Face's layout (52 ARKit shapes, head angles)")
    exp.add_argument("--gltf", help="output .glb: the person's mesh, 53 morph targets, animation")
    exp.add_argument("--obj-seq", help="output folder: one OBJ mesh per frame with a face")
    exp.add_argument("--weights", help="weights folder the recording was made with (default: the shipped one)")
    exp.add_argument("--model", help="model file (default: the user cache)")
    exp.set_defaults(func=_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("--source") or argv[0] in ("--record",):
        argv = ["run", *argv]  # `facetrack` alone opens the window on webcam 0
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return int(args.func(args) or 0)
    except FacetrackError as e:
        print(f"facetrack: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame) -> None:
    """SIGTERM ends a run like Ctrl+C: recordings close, the summary prints (the window closes itself)."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
