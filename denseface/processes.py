"""What the server's and the batch's worker processes share: how many CPUs they may use, dying with
their parent, and saying how a worker ended. Imports nothing of denseface (both layers use it)."""

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


def available_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The CPUs this process may use: the CPU set it is pinned to (``--cpuset-cpus``), lowered to its
    cgroup's CPU limit rounded up (``--cpus 2``, a Kubernetes ``limits.cpu``: cgroup v2 ``cpu.max``,
    v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``). The default number of worker processes: a
    2-CPU container on a 64-core host runs 2, not 64."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        cpus = min(cpus, limit)
    return max(1, cpus)


def _cgroup_cpu_limit(root: str) -> int | None:
    """The CPU limit of the cgroup this process is in (whole CPUs, rounded up), or None if it has none."""
    quota_period: tuple[str, str] | None = None
    try:  # cgroup v2 (the unified hierarchy): "max 100000" or "200000 100000"
        with open(os.path.join(root, "cpu.max"), encoding="ascii") as fh:
            fields = fh.read().split()
        if len(fields) == 2:
            quota_period = (fields[0], fields[1])
    except OSError:
        pass
    if quota_period is None:
        try:  # cgroup v1 (a hybrid host): -1 means no limit
            with open(os.path.join(root, "cpu", "cpu.cfs_quota_us"), encoding="ascii") as fh:
                quota = fh.read().strip()
            with open(os.path.join(root, "cpu", "cpu.cfs_period_us"), encoding="ascii") as fh:
                quota_period = ("max" if quota == "-1" else quota, fh.read().strip())
        except OSError:
            return None
    quota, period = quota_period
    if quota == "max" or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return max(1, -(-int(quota) // int(period)))
