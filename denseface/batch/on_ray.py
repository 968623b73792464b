"""A batch on a Ray cluster with Ray Data: inputs → ``map_batches`` over an actor pool → rows.

Each actor holds one :class:`~denseface.api.Analyzer` (built once, like a local worker) and turns a
batch of inputs into rows with the same :func:`~denseface.batch.rows.analyze_source` as the local
workers, so the rows are the same. Rows travel back to the driver as JSON text (one column: no Arrow
schema to infer from rows whose faces or errors differ), where they are written and counted exactly as
local rows are. Ray Data streams: inputs are read and rows come back while the pool works, with its
own backpressure.

``address``: ``"auto"`` joins the cluster this machine belongs to (``ray start``), and when there is
none starts a local runtime; ``"local"`` always starts a new local runtime; anything else is handed to
``ray.init(address=...)`` (``ray://host:10001``, ``host:6379``). Every node needs denseface with its
models (``denseface models fetch``) and must be able to read the inputs' paths (a shared file system),
or the inputs must be URLs.

Ray is an optional extra (``pip install 'denseface[ray]'``), imported only here, only when used.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from denseface.batch.rows import Row, error_row, is_url
from denseface.batch.worker import WorkerConfig, build_analyzer
from denseface.errors import InferenceError

log = logging.getLogger(__name__)

SERVER_ERROR = InferenceError.code  # FailedOperation.ServerError
ROWS_PER_BLOCK = 4  # small blocks: each is one actor call, so work spreads evenly over the pool


class RayMissingError(ImportError):
    pass


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayMissingError("--ray needs Ray Data: pip install 'denseface[ray]'") from exc
    return ray


class RayAnalyzer:
    """The actor's callable: one Analyzer, a batch of inputs in, their rows (as JSON) out."""

    def __init__(self, config: WorkerConfig) -> None:
        from denseface.batch.rows import Fetcher

        logging.basicConfig(level=config.log_level)
        self.options = config.options
        self.analyzer = build_analyzer(config)
        self.fetcher = Fetcher(config.options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from denseface.batch.rows import analyze_source

        rows = []
        for path, file in zip(batch["path"], batch["file"], strict=True):
            row = analyze_source(self.analyzer, str(file), self.options, self.fetcher)
            rows.append({**row, "path": str(path)})  # the input as given, as local rows have it
        return {"row": np.array([json.dumps(r, separators=(",", ":")) for r in rows], dtype=object)}


def connect(address: str, workers: int | None) -> None:
    """Join the cluster at ``address`` (or start a local runtime for ``auto`` when there is none)."""
    ray = _ray()
    if ray.is_initialized():
        return
    quiet = {"logging_level": logging.WARNING, "configure_logging": True, "log_to_driver": True}
    if address not in ("auto", "local"):
        ray.init(address=address, **quiet)
        return
    try:
        if address == "local":
            raise ConnectionError("a new local runtime was asked for")
        ray.init(address="auto", **quiet)
        log.info("joined the local Ray cluster")
    except ConnectionError:
        # More logical CPUs than actors: Ray Data's own tasks (splitting the input) need a CPU too, and
        # with every CPU held by an actor they wait forever (seen with 2 actors on num_cpus=2).
        cores = os.cpu_count() or 1
        actors = workers or cores
        ray.init(num_cpus=actors + 2, include_dashboard=False, **quiet)
        log.info("started a local Ray runtime (%d actors)", actors)


def pool_size(workers: int | None) -> int:
    """``workers`` actors, or one per CPU of the cluster but two (left for Ray Data's own tasks)."""
    if workers:
        return workers
    return max(1, int(_ray().cluster_resources().get("CPU", 1)) - 2)


def run_ray(
    sources: Sequence[str], *, address: str = "auto", workers: int | None = None, config: WorkerConfig
) -> Iterator[Row]:
    """Rows of ``sources`` from an actor pool on the Ray cluster at ``address``.

    An actor that dies is restarted by Ray and its block tried once more; a block that fails again is
    dropped by Ray Data (not the whole data set) and its inputs are tried again one by one; an input
    whose actor dies then too gets ``FailedOperation.ServerError``, as with local workers."""
    if not sources:
        return
    ray = _ray()
    connect(address, workers)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the batch's own progress reports
    context.print_on_execution_start = False
    context.max_errored_blocks = -1  # a block whose actor died twice is dropped, not the batch
    size = pool_size(workers)
    seen: set[str] = set()
    for row in _map(ray, sources, size, config, ROWS_PER_BLOCK):
        seen.add(row["path"])
        yield row
    lost = [s for s in sources if s not in seen]
    if lost:
        log.error("%d inputs were lost with Ray actors that died: trying them again one by one", len(lost))
        for row in _map(ray, lost, min(size, len(lost)), config, 1):
            seen.add(row["path"])
            yield row
    for source in sources:
        if source not in seen:
            message = "the Ray actor analysing this photo died, twice; the photo was not analysed"
            yield error_row(source, SERVER_ERROR, message)


def _map(ray: Any, sources: Sequence[str], size: int, config: WorkerConfig, per_block: int) -> Iterator[Row]:
    blocks = max(1, -(-len(sources) // per_block))
    # actors do not share the driver's working directory: relative paths travel made absolute
    items = [{"path": s, "file": s if is_url(s) else os.path.abspath(s)} for s in sources]
    rows = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        RayAnalyzer,
        fn_constructor_args=(config,),
        batch_size=per_block,
        batch_format="numpy",
        # one by one, also one task at a time per actor: a task queued on an actor dies with it, and
        # an innocent photo queued behind a deadly one would use up its retry there
        compute=ray.data.ActorPoolStrategy(
            size=size, **({"max_tasks_in_flight_per_actor": 1} if per_block == 1 else {})
        ),
        num_cpus=1,
        max_restarts=-1,  # a dead actor is replaced …
        max_task_retries=1,  # … and its block tried once more (Ray Data's default: forever)
    )
    log.info("Ray: %d inputs in %d blocks over %d actors", len(sources), blocks, size)
    for item in rows.iter_rows():
        yield json.loads(item["row"])
