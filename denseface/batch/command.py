"""``denseface batch``: its arguments and its body (``denseface/cli.py`` only registers it)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from denseface.cli_args import positive_int  # the same argparse types as the other subcommands

if TYPE_CHECKING:
    from denseface.batch.rows import RowOptions

log = logging.getLogger("denseface.batch")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="888 landmarks for many photos (folders, globs, @lists, URLs) into JSONL or Parquet",
        description="One row per input into OUT; local worker processes by default, Ray Data with --ray.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image files, directories (recursive), globs, @LIST (a file: one path or http(s) URL a line)",
    )
    p.add_argument(
        "--out", required=True, metavar="OUT", help="OUT.jsonl or OUT.parquet (a directory of parts)"
    )
    p.add_argument("--mode", type=int, choices=(0, 1), default=0, help="0: up to 5 faces; 1: the largest")
    p.add_argument("--rotate", action="store_true", help="also find faces turned by 90/180/270 degrees")
    p.add_argument(
        "--format", choices=("tencent", "full"), default="tencent", help="full: also the 478-point mesh"
    )
    p.add_argument(
        "--detector",
        choices=("fast", "thorough", "exhaustive"),
        default="thorough",
        help="as for analyze",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes (default: all cores), or Ray actors (default: the cluster's CPUs - 2)",
    )
    p.add_argument("--resume", action="store_true", help="skip inputs already in OUT and append the rest")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        default=None,
        help="run with Ray Data: auto (this machine's cluster, else a new local runtime), local, "
        "or a cluster address (ray://head:10001, head:6379)",
    )
    p.add_argument(
        "--part-rows",
        type=positive_int,
        default=None,
        metavar="N",
        help="rows per Parquet part file (default 256; a kill loses at most the rows not yet in a part)",
    )
    p.add_argument("--quiet", action="store_true", help="log lines instead of the progress bar")
    p.set_defaults(func=run)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _options(args: argparse.Namespace, env: Mapping[str, str]) -> RowOptions:
    from denseface.batch.rows import RowOptions

    return RowOptions(
        mode=args.mode,
        rotate=args.rotate,
        format=args.format,
        detector=args.detector,
        # the server's settings for URLs, from the same variables
        url_allow=tuple(p.strip() for p in env.get("DENSEFACE_URL_ALLOW", "").split(",") if p.strip()),
        url_connect_timeout=float(env.get("DENSEFACE_URL_CONNECT_TIMEOUT") or 3.0),
        url_deadline=float(env.get("DENSEFACE_URL_DEADLINE") or 8.0),
    )


def run(args: argparse.Namespace) -> int:
    from denseface.batch.inputs import InputError
    from denseface.batch.run import run_batch
    from denseface.batch.sinks import SinkError

    env = os.environ
    try:
        options = _options(args, env)
    except ValueError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _interrupt)  # a kill(1) stops like Ctrl-C: OUT closed, resumable
    try:
        summary = run_batch(
            args.inputs,
            args.out,
            options=options,
            workers=args.workers,
            ray=args.ray,
            resume=args.resume,
            model_dir=args.model_dir,
            bar=False if args.quiet else None,
            **({"part_rows": args.part_rows} if args.part_rows else {}),
        )
    except (SinkError, InputError) as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except ImportError as exc:  # an optional extra is missing
        log.error("%s", exc)
        return EXIT_ERROR
    return EXIT_INTERRUPTED if summary.interrupted else 0
