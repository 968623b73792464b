"""Real Analyzers with one model run made to fail or to hang, for the error paths the real models do not
produce on demand. Module-level and picklable: the server's worker processes build them from a
``functools.partial`` (``WorkerConfig.analyzer_factory``), in their own interpreter."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from denseface.api import Analyzer


class FailingInvoke:
    """Stands in for one LiteRT interpreter's ``invoke`` of a real :class:`Analyzer`, only to make a model
    run fail as the runtime can (RuntimeError/ValueError from a kernel, MemoryError from an allocation,
    or a bug's TypeError). Everything else — protocol, parameters, base64, header checks, decode,
    detection — is real, and the next run works."""

    def __init__(self, interp: Any, failure: BaseException) -> None:
        self.raw, self.failure, self.calls = interp.invoke, failure, 0
        interp.invoke = self

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == 1:
            raise self.failure
        self.raw()


class SlowInvoke:
    """The first mesh run of the first process that gets here sleeps ``seconds`` (``marker`` records
    that it happened, so a replacement worker built by the same factory is fast)."""

    def __init__(self, interp: Any, seconds: float, marker: Path) -> None:
        self.raw, self.seconds, self.marker = interp.invoke, seconds, marker
        interp.invoke = self

    def __call__(self) -> None:
        if not self.marker.exists():
            self.marker.touch()
            time.sleep(self.seconds)
        self.raw()


def failing_analyzer(model_dir: Path, failure: BaseException) -> Analyzer:
    analyzer = Analyzer(model_dir)
    FailingInvoke(analyzer._pipeline.mesh._interp, failure)  # the face is found; its landmarking fails
    return analyzer


def slow_analyzer(model_dir: Path, seconds: float, marker: Path) -> Analyzer:
    analyzer = Analyzer(model_dir)
    SlowInvoke(analyzer._pipeline.mesh._interp, seconds, marker)
    return analyzer
