"""Per-process measurements from ``/proc`` for the benchmarks: RSS, PSS, CPU time, a process's descendants."""

from __future__ import annotations

import os
from pathlib import Path


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (``VmRSS`` in ``/proc/PID/status``); 0 if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size of ``pid`` in MB (``/proc/PID/smaps_rollup``); 0 if unavailable."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (``/proc/PID/stat``); 0 if unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def descendants(pid: int) -> list[int]:
    """The live processes under ``pid`` (the server's workers and multiprocessing's resource tracker)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(p) for p in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            todo += [k for k in kids if k not in found]
            found += [k for k in kids if k not in found]
    return found


def total_rss_mb(pid: int) -> float:
    """``VmRSS`` of ``pid`` and every process under it, added up."""
    return rss_mb(pid) + sum(rss_mb(child) for child in descendants(pid))


def total_pss_mb(pid: int) -> float:
    return pss_mb(pid) + sum(pss_mb(child) for child in descendants(pid))


def worker_cpu_s(pid: int) -> float:
    """CPU seconds of the live processes under ``pid``."""
    return sum(cpu_s(child) for child in descendants(pid))
