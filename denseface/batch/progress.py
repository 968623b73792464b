"""Progress of a batch: a tqdm bar on a terminal, plain log lines otherwise (or with ``--quiet``)."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import Any

from denseface.batch.rows import Row

log = logging.getLogger("denseface.batch")

LOG_EVERY = 10.0  # seconds between log lines without a bar


@dataclass(frozen=True)
class Summary:
    """What a batch did: ``photos`` rows written in this run (``faces``/``errors`` among them),
    ``skipped`` inputs already in OUT (``--resume``), whether it was ``interrupted``."""

    photos: int
    faces: int
    errors: int
    skipped: int
    seconds: float
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.photos / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        state = "interrupted" if self.interrupted else "done"
        skipped = f"; {self.skipped} already in the output" if self.skipped else ""
        return (
            f"{state}: {self.photos} photos in {self.seconds:.1f} s ({self.rate:.2f} photos/s), "
            f"{self.faces} faces, {self.errors} errors{skipped}"
        )


class Progress:
    def __init__(self, total: int, *, bar: bool | None = None, skipped: int = 0) -> None:
        self.total, self.skipped = total, skipped
        self.photos = self.faces = self.errors = 0
        self.started = time.monotonic()
        self._last_log = self.started
        use_bar = sys.stderr.isatty() if bar is None else bar
        self._bar: Any = None
        if use_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="photo", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

    def update(self, row: Row) -> None:
        self.photos += 1
        self.faces += len(row["faces"])
        if row["error"] is not None:
            self.errors += 1
        if self._bar is not None:
            self._bar.set_postfix(faces=self.faces, errors=self.errors, refresh=False)
            self._bar.update(1)
            return
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY:
            self._last_log = now
            log.info("%s", self.status(now))

    def status(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        rate = self.photos / elapsed if elapsed > 0 else 0.0
        left = self.total - self.photos
        eta = _duration(left / rate) if rate > 0 else "?"
        return (
            f"{self.photos}/{self.total} photos, {rate:.2f} photos/s, {self.faces} faces, "
            f"{self.errors} errors, ETA {eta}"
        )

    def close(self, *, interrupted: bool = False) -> Summary:
        if self._bar is not None:
            self._bar.close()
        return Summary(
            self.photos,
            self.faces,
            self.errors,
            self.skipped,
            time.monotonic() - self.started,
            interrupted,
        )


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
