"""``denseface.batch``: 888 points for many photos, in local worker processes or on a Ray cluster.

    >>> from denseface.batch import analyze_batch, run_batch
    >>> for row in analyze_batch(["photos/", "@more.txt"], workers=2):   # rows as they finish
    ...     print(row["path"], len(row["faces"]), row["error"])
    >>> run_batch(["photos/"], "landmarks.jsonl", resume=True)            # written, resumable

Rows are plain dicts (see :mod:`denseface.batch.rows`); ``denseface batch`` is this with a progress bar.
Imports are lazy: ``import denseface.batch`` loads neither the models' libraries nor Ray.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from denseface.batch.progress import Summary
    from denseface.batch.rows import Row, RowOptions
    from denseface.batch.run import run_batch
    from denseface.batch.sinks import read_rows

_LAZY = {
    "Summary": "denseface.batch.progress",
    "Row": "denseface.batch.rows",
    "RowOptions": "denseface.batch.rows",
    "run_batch": "denseface.batch.run",
    "read_rows": "denseface.batch.sinks",
}


def analyze_batch(
    inputs: Iterable[str],
    *,
    mode: int = 0,
    rotate: bool = False,
    format: str = "tencent",
    detector: str = "thorough",
    workers: int | None = None,
    ray: str | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    url_allow: tuple[str, ...] = (),
) -> Iterator[Row]:
    """The row of every input (files, directories, globs, ``@LIST``, URLs), in the order they finish.

    ``workers``: processes (default: all cores) or Ray actors; ``ray``: ``"auto"`` or a cluster address.
    Closing the generator stops the workers."""
    from denseface.batch.inputs import collect_inputs
    from denseface.batch.rows import RowOptions
    from denseface.batch.run import rows_for
    from denseface.batch.worker import WorkerConfig

    options = RowOptions(mode=mode, rotate=rotate, format=format, detector=detector, url_allow=url_allow)
    config = WorkerConfig(options=options, model_dir=Path(model_dir) if model_dir is not None else None)
    rows = rows_for(collect_inputs(inputs), config=config, workers=workers, ray=ray)
    try:
        yield from rows
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'denseface.batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["Row", "RowOptions", "Summary", "analyze_batch", "read_rows", "run_batch"]
