"""The ``denseface`` command: analyze photos, draw overlays, manage weights, serve the API + page."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from denseface import __version__, logs
from denseface.cli_args import positive_int
from denseface.errors import DensefaceError

log = logging.getLogger("denseface")

EXIT_ERROR = 1
EXIT_USAGE = 2


def _full(face: Any, width: int, height: int) -> dict[str, Any]:
    from denseface.rpc.actions.analyze_dense_landmarks import dense_face_shape

    def r(values: Any) -> Any:
        return [[round(float(v), 2) for v in row] for row in values]

    return {
        "tencent": dense_face_shape(face, width, height),
        "box": {k: round(v, 2) for k, v in vars(face.box).items()},
        "score": round(face.score, 4),
        "presence": round(face.presence, 4),
        "pose": vars(face.pose),
        "regions": {name: r(pts) for name, pts in face.regions.items()},
        "ibug68": r(face.to_ibug68()),
        "mesh": r(face.mesh),
    }


def cmd_analyze(args: argparse.Namespace) -> int:
    from denseface.api import Analyzer
    from denseface.engine.decode import load
    from denseface.engine.draw import draw_faces, draw_shape90
    from denseface.rpc.actions import analyze_dense_landmarks, analyze_face

    if args.draw and len(args.images) > 1 and not Path(args.draw).is_dir():
        log.error("--draw must be an existing directory when several images are given")
        return EXIT_USAGE
    from denseface.engine.pipeline import PipelineOptions

    analyzer = Analyzer(args.model_dir, options=PipelineOptions(detector=args.detector))
    results: list[dict[str, Any]] = []
    failed = False
    for path in args.images:
        try:
            decoded = load(path)
            limit = (analyze_face if args.format == "analyze-face" else analyze_dense_landmarks).MAX_FACES
            faces = analyzer.analyze(decoded, mode=args.mode, rotate=args.rotate, max_faces=limit)
        except DensefaceError as exc:
            log.error("%s: %s (%s)", path, exc.message, exc.code)
            results.append({"Image": str(path), "Error": {"Code": exc.code, "Message": exc.message}})
            failed = True
            continue
        if args.format == "analyze-face":
            body = analyze_face.analyze_face_response(decoded.width, decoded.height, faces)
        else:
            body = analyze_dense_landmarks.analyze_response(decoded.width, decoded.height, faces)
        if args.format == "full":
            body["Faces"] = [_full(f, decoded.width, decoded.height) for f in faces]
            del body["DenseFaceShapeSet"]
        if len(args.images) > 1:
            body = {"Image": str(path), **body}
        results.append(body)
        if args.draw:
            from PIL import Image

            target = Path(args.draw)
            if target.is_dir():
                target = target / f"{Path(path).stem}.denseface.png"
            try:
                draw = draw_shape90 if args.format == "analyze-face" else draw_faces
                Image.fromarray(draw(decoded.rgb, faces)).save(target)
            except (OSError, ValueError) as exc:  # bad directory or extension: keep the JSON
                log.error("cannot write overlay %s: %s", target, exc)
                failed = True
            else:
                log.info("overlay written to %s", target)
        log.info("%s: %d face(s)", path, len(faces))
    out = results[0] if len(results) == 1 else results
    sys.stdout.write(json.dumps(out, indent=None if args.compact else 1, ensure_ascii=False) + "\n")
    return EXIT_ERROR if failed else 0


def cmd_models(args: argparse.Namespace) -> int:
    from denseface.engine import models

    directory = Path(args.dir) if args.dir else None
    paths = models.fetch(directory, force=args.force) if args.action == "fetch" else models.locate(directory)
    for name, path in paths.items():
        sys.stdout.write(f"{name}\t{path}\n")
    return 0


def cmd_layout_figure(args: argparse.Namespace) -> int:
    from PIL import Image

    from denseface.api import Analyzer
    from denseface.engine.decode import load
    from denseface.engine.figure import layout_figure, shape90_figure

    decoded = load(args.image)
    faces = Analyzer(args.model_dir).analyze(decoded, mode=1)
    if not faces:
        log.error("%s: no face found", args.image)
        return EXIT_ERROR
    figure = shape90_figure if args.points == 90 else layout_figure
    Image.fromarray(figure(decoded.rgb, faces[0], width=args.width)).save(args.output)
    log.info("layout figure written to %s", args.output)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from denseface.server.run import serve

    return serve(
        host=args.host,
        port=args.port,
        workers=args.workers,
        credentials=args.credentials,
        model_dir=args.model_dir,
        detector=args.detector,
    )


def cmd_video(args: argparse.Namespace) -> int:
    from denseface.video import run

    try:
        run(
            args.video,
            args.out,
            draw=args.draw,
            model_dir=args.model_dir,
            detector=args.detector,
            mode=args.mode,
            rotate=args.rotate,
            smooth=not args.no_smooth,
            detect_every=args.detect_every,
            progress=not args.no_progress,
        )
    except OSError as exc:  # --out cannot be written
        log.error("%s", exc)
        return EXIT_ERROR
    return 0


def _figure_width(text: str) -> int:
    value = int(text)
    if value < 400:
        raise argparse.ArgumentTypeError("the figure needs at least 400 pixels (300 are the legend)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="denseface", description=__doc__)
    parser.add_argument("--version", action="version", version=f"denseface {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--model-dir", help="model cache directory (default: $DENSEFACE_MODEL_DIR or user cache)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze", help="888 landmarks of every face in one or more photos, as JSON")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, BMP, WebP, TIFF, ...)")
    p.add_argument(
        "--mode",
        type=int,
        choices=(0, 1),
        default=0,
        help="0: up to 5 faces (10 with analyze-face); 1: the largest",
    )
    p.add_argument("--rotate", action="store_true", help="also find faces turned by 90/180/270 degrees")
    p.add_argument(
        "--detector",
        choices=("fast", "thorough", "exhaustive"),
        default="thorough",
        help="thorough (default): CenterFace over the photo only where a doubt remains; fast: never; "
        "exhaustive: every detector on every photo",
    )
    p.add_argument("--draw", metavar="OUT.png", help="write an overlay PNG (a directory for several images)")
    p.add_argument(
        "--format",
        choices=("tencent", "full", "analyze-face"),
        default="tencent",
        help="tencent: AnalyzeDenseLandmarks (888); full: + box, pose, mesh; analyze-face: AnalyzeFace (90)",
    )
    p.add_argument("--compact", action="store_true", help="one-line JSON")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser("models", help="fetch or check the model weights")
    p.add_argument("action", choices=("fetch", "verify"))
    p.add_argument("--dir", help="cache directory (default: $DENSEFACE_MODEL_DIR or user cache)")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("layout-figure", help="draw the labelled 888-point layout on a photo")
    p.add_argument("image")
    p.add_argument("output")
    p.add_argument("--width", type=_figure_width, default=900, help="figure width in pixels (≥ 400)")
    p.add_argument(
        "--points", type=int, choices=(888, 90), default=888, help="888 (default) or AnalyzeFace's 90"
    )
    p.set_defaults(func=cmd_layout_figure)

    p = sub.add_parser("video", help="track faces through a video: one JSON line per frame")
    p.add_argument("video", help="video file (mp4, mov, avi, webm, … anything OpenCV's FFmpeg reads)")
    p.add_argument("--out", required=True, metavar="OUT.jsonl", help="JSON Lines output ('-': stdout)")
    p.add_argument("--draw", metavar="OUT.mp4", help="also write the video with the overlay (mp4v)")
    p.add_argument("--mode", type=int, choices=(0, 1), default=0, help="0: up to 5 faces; 1: the largest")
    p.add_argument("--rotate", action="store_true", help="also find faces turned by 90/180/270 degrees")
    p.add_argument("--no-smooth", action="store_true", help="raw points (no One Euro filter)")
    p.add_argument(
        "--detect-every", type=positive_int, default=10, metavar="K", help="run the detectors every K frames"
    )
    p.add_argument(
        "--detector", choices=("fast", "thorough", "exhaustive"), default="thorough", help="as for analyze"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_video)

    p = sub.add_parser("serve", help="serve the Tencent-compatible API and the page")
    p.add_argument("--host", default=None, help="address (default: $DENSEFACE_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: $DENSEFACE_PORT or 8000)")
    p.add_argument("--workers", type=int, default=None, help="inference processes (default: CPU cores)")
    p.add_argument(
        "--detector",
        choices=("fast", "thorough", "exhaustive"),
        default=None,
        help="face finding (default: $DENSEFACE_DETECTOR or thorough)",
    )
    p.add_argument("--credentials", help="TOML file of API keys (default: env or a generated local key)")
    p.set_defaults(func=cmd_serve)

    from denseface.keys_cli import add_parser as add_keys_parser

    add_keys_parser(sub)
    from denseface.batch.command import add_parser as add_batch_parser

    add_batch_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(logging.DEBUG if args.verbose else logging.INFO)
    try:
        code: int = args.func(args)
    except DensefaceError as exc:
        log.error("%s (%s)", exc.message, exc.code)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    return code
