"""A whole batch: inputs → rows (local processes or Ray) → OUT, with progress, resume and a summary."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from denseface.batch.inputs import collect_inputs
from denseface.batch.progress import Progress, Summary
from denseface.batch.rows import Row, RowOptions
from denseface.batch.sinks import PART_ROWS, done_paths, kind_of, open_sink
from denseface.batch.worker import WorkerConfig
from denseface.processes import available_cpus

log = logging.getLogger("denseface.batch")


def default_workers() -> int:
    return available_cpus()


def rows_for(
    sources: Sequence[str],
    *,
    config: WorkerConfig,
    workers: int | None = None,
    ray: str | None = None,
) -> Iterator[Row]:
    """The rows of ``sources`` (each a file path or URL), as they finish: local processes, or Ray Data
    on the cluster at ``ray`` (``"auto"``, an address)."""
    if ray is not None:
        from denseface.batch.on_ray import run_ray

        return run_ray(sources, address=ray, workers=workers, config=config)
    from denseface.batch.local import run_local

    # no more processes than photos: a worker started after the work is done only costs its start
    return run_local(sources, max(1, min(workers or default_workers(), len(sources))), config)


def run_batch(
    inputs: Iterable[str],
    out: str | os.PathLike[str],
    *,
    options: RowOptions | None = None,
    workers: int | None = None,
    ray: str | None = None,
    resume: bool = False,
    model_dir: str | os.PathLike[str] | None = None,
    bar: bool | None = None,
    part_rows: int = PART_ROWS,
    config: WorkerConfig | None = None,
) -> Summary:
    """Analyse every input (files, directories, globs, ``@LIST``, URLs) into ``out`` (.jsonl or .parquet).

    With ``resume`` the inputs already in ``out`` are skipped and new rows appended; without it an
    existing ``out`` is refused. Ctrl-C (KeyboardInterrupt) stops the batch with ``out`` complete and
    resumable; the summary says ``interrupted``. ``bar``: a progress bar (default: when stderr is a
    terminal), else log lines. ``part_rows``: rows per Parquet part file.
    """
    options = options or RowOptions()
    if config is None:
        config = WorkerConfig(
            options=options,
            model_dir=Path(model_dir) if model_dir is not None else None,
        )
    kind_of(out)
    not_images: list[str] = []
    sources = collect_inputs(inputs, not_images)
    if not_images:
        shown = ", ".join(not_images[:5]) + (
            f" and {len(not_images) - 5} more" if len(not_images) > 5 else ""
        )
        log.warning("skipped %d file(s) that are not images by their extension: %s", len(not_images), shown)
    done = done_paths(out) if resume else set()
    todo = [s for s in sources if s not in done]
    sink = open_sink(out, full=options.format == "full", resume=resume, part_rows=part_rows)
    skipped = len(sources) - len(todo)
    if skipped:
        log.info("%d of %d inputs already in %s: skipped", skipped, len(sources), out)
    progress = Progress(len(todo), bar=bar, skipped=skipped)
    rows = rows_for(todo, config=config, workers=workers, ray=ray)
    interrupted = False
    try:
        for row in rows:
            sink.write(row)
            progress.update(row)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()  # stops the workers
        sink.close()
    summary = progress.close(interrupted=interrupted)
    log.info("%s", summary.line())
    if interrupted:
        log.info("%s is complete up to here: run again with --resume to finish", out)
    return summary
