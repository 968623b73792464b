"""Jobs waiting for a worker, shared fairly between keys: the next job goes to the key with the fewest
jobs running now (ties: the key whose oldest waiting job came first), first in, first out within a key.
So a key with many jobs queued delays another key's job by at most the job a worker is finishing, not
by its whole queue."""

from __future__ import annotations

import collections
import itertools
from collections.abc import Mapping
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
        key = min(self._queues, key=lambda k: (busy.get(k, 0), self._queues[k][0][0]))
        queue = self._queues[key]
        _, item = queue.popleft()
        if not queue:
            del self._queues[key]
        self._size -= 1
        return item

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


__all__ = ["FairQueue"]
