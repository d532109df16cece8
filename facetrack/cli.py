"""`facetrack` command line: a thin layer over the library; expected failures print one line, exit 2."""

from __future__ import annotations

import argparse
import json
import sys
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


def _model_render(args: argparse.Namespace) -> None:
    from facetrack.gallery import render_gallery
    from facetrack.model.facemodel import FaceModel

    face = FaceModel.load(Path(args.model) if args.model else None)
    for path in render_gallery(face, Path(args.out), seed=args.seed):
        print(path)


def _synth(args: argparse.Namespace) -> None:
    from facetrack.model.facemodel import FaceModel
    from facetrack.synth import SynthConfig, generate

    face = FaceModel.load(Path(args.model) if args.model else None)
    bg = Path(args.backgrounds) if args.backgrounds else None
    out = generate(face, Path(args.out), args.n, bg, SynthConfig(seed=args.seed))
    print(f"wrote {args.n} samples to {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facetrack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="build, inspect and render the face model").add_subparsers(
        dest="action", required=True)
    build = model.add_parser("build", help="import an ICT-FaceKit FaceXModel folder into the user cache")
    build.add_argument("--ict", help="FaceXModel folder (default: $FACETRACK_ICT)")
    build.add_argument("--out", help=f"model file (default: $FACETRACK_HOME/{paths.MODEL_FILENAME})")
    build.add_argument("--reflectance-modes", type=int, default=80, help="size of the reflectance space")
    build.set_defaults(func=_model_build)
    info = model.add_parser("info", help="print the model's counts")
    info.add_argument("--model", help="model file (default: the user cache)")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_model_info)
    render = model.add_parser("render", help="render PNGs of the mean face, an identity, expressions, lights")
    render.add_argument("--out", required=True)
    render.add_argument("--model")
    render.add_argument("--seed", type=int, default=0)
    render.set_defaults(func=_model_render)

    synth = sub.add_parser("synth", help="render synthetic faces with exact ground truth")
    synth.add_argument("--out", required=True)
    synth.add_argument("-n", type=int, default=300)
    synth.add_argument("--backgrounds", help="folder of real photos to render over")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--model")
    synth.set_defaults(func=_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FacetrackError as e:
        print(f"facetrack: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
