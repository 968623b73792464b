"""Jobs waiting for a worker, taken in turn across keys: first in, first out within one key, and one
key after another between keys, so a key with many jobs queued delays another key's job by at most one
job per worker, not by its whole queue."""

from __future__ import annotations

import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Round-robin over keys (each key's turn moves it to the back), FIFO within a key."""

    def __init__(self) -> None:
        self._queues: collections.OrderedDict[str, collections.deque[T]] = collections.OrderedDict()
        self._size = 0

    def append(self, key: str, item: T) -> None:
        self._queues.setdefault(key, collections.deque()).append(item)
        self._size += 1

    def popleft(self) -> T:
        """The next key's oldest item; ``IndexError`` when empty."""
        if not self._queues:
            raise IndexError("pop from an empty FairQueue")
        key, queue = next(iter(self._queues.items()))
        item = queue.popleft()
        if queue:
            self._queues.move_to_end(key)
        else:
            del self._queues[key]
        self._size -= 1
        return item

    def remove(self, key: str, item: T) -> bool:
        """Drop ``item`` (a job whose request timed out while queued); ``False`` if it is not queued."""
        queue = self._queues.get(key)
        if queue is None or item not in queue:
            return False
        queue.remove(item)
        if not queue:
            del self._queues[key]
        self._size -= 1
        return True

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0


__all__ = ["FairQueue"]
