"""Jobs waiting for a worker, shared fairly between keys.

* :class:`FairQueue`: the next job goes to the key with the fewest jobs running now (ties: the key whose
  oldest waiting job came first), first in, first out within a key. So a key with many jobs queued
  delays another key's job by at most the job a worker is finishing, not by its whole queue.
* :class:`Shares`: how many workers a key may hold at once. A key alone may hold them all; while other
  keys are active (a job queued or running, or one within the last ``window`` seconds), it may hold all
  but one per other active key (at least one). So a key calling now and then finds a worker free even
  while another key floods, at the cost of the flooding key's throughput only while the other is active.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Per-key FIFO queues; :meth:`popleft` picks the key (see the module docstring)."""

    def __init__(self) -> None:
        self._queues: dict[str, collections.deque[tuple[int, T]]] = {}
        self._order = itertools.count()
        self._size = 0

    def append(self, key: str, item: T) -> None:
        self._queues.setdefault(key, collections.deque()).append((next(self._order), item))
        self._size += 1

    def popleft(self, running: Mapping[str, int] | None = None) -> T:
        """The oldest item of the key with the fewest ``running`` jobs; ``IndexError`` when empty."""
        if not self._queues:
            raise IndexError("pop from an empty FairQueue")
        busy = running or {}
        return self._pop(min(self._queues, key=lambda k: (busy.get(k, 0), self._queues[k][0][0])))

    def take(self, running: Mapping[str, int], caps: Mapping[str, int]) -> T | None:
        """Like :meth:`popleft`, among the keys with fewer ``running`` jobs than their ``caps`` (a key
        not in ``caps``: no cap); ``None`` if no queued key may take a worker now."""
        allowed = [
            k for k in self._queues if running.get(k, 0) < caps.get(k, len(self) + 1 + running.get(k, 0))
        ]
        if not allowed:
            return None
        return self._pop(min(allowed, key=lambda k: (running.get(k, 0), self._queues[k][0][0])))

    def _pop(self, key: str) -> T:
        """The oldest item of ``key``'s queue (dropping the queue once empty)."""
        queue = self._queues[key]
        _, item = queue.popleft()
        if not queue:
            del self._queues[key]
        self._size -= 1
        return item

    def keys(self) -> list[str]:
        """The keys with a job queued."""
        return list(self._queues)

    def remove(self, key: str, item: T) -> bool:
        """Drop ``item`` (a job whose request timed out while queued); ``False`` if it is not queued."""
        queue = self._queues.get(key)
        entry = next((e for e in queue or () if e[1] == item), None)
        if queue is None or entry is None:
            return False
        queue.remove(entry)
        if not queue:
            del self._queues[key]
        self._size -= 1
        return True

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0


class Shares:
    """The keys seen recently, and the workers each active key may hold (see the module docstring)."""

    def __init__(self, window: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._seen: dict[str, float] = {}

    def seen(self, key: str) -> None:
        """``key`` submitted or finished a job now."""
        self._seen.pop(key, None)
        self._seen[key] = self._clock()  # (kept in order of last sight)

    def caps(self, workers: int, queued: Iterable[str], running: Mapping[str, int]) -> dict[str, int]:
        now = self._clock()
        while self._seen and now - next(iter(self._seen.values())) >= self.window:
            del self._seen[next(iter(self._seen))]  # the oldest sighting has aged out
        active = {*queued, *(k for k, n in running.items() if n > 0), *self._seen}
        cap = max(1, workers - (len(active) - 1))
        return dict.fromkeys(active, cap)

    def next_change(self) -> float | None:
        """Seconds until the oldest recent sighting ages out (caps may rise then); ``None``: none."""
        if not self._seen:
            return None
        return max(0.0, next(iter(self._seen.values())) + self.window - self._clock())


__all__ = ["FairQueue", "Shares"]
