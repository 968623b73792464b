"""What the server's and the batch's worker processes share: dying with their parent, and saying how
a worker ended. Imports nothing of denseface (both layers use it)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import wait


def exit_with_parent() -> None:
    """In a worker: exit as soon as the parent process is gone, even while a job runs (a watcher
    thread that never touches the models). A no-op in a process that was not started by
    multiprocessing."""
    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None else None
    if sentinel is None:
        return

    def watch() -> None:
        wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="denseface-parent-watch", daemon=True).start()


def describe_exit(code: int | None) -> str:
    """How a worker process ended, from its exit code, for a log line ("was killed by SIGKILL")."""
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"
