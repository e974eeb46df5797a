"""`StateMemo`: a small LRU of query outcomes tied to one state of the index.

`search.engine.SearchEngine` remembers how a query was relaxed (and how many items each of
its words matches on its own) so that a repeated query runs the one plan that answered it
instead of the strict plan and a count per word. Head queries repeat, as a shop's do.

An entry is valid for one index state: the live generation, the number of writes this
engine has made and, for the embedded backend, the index's commit version (which moves with
a write by any process); any other state empties the memo. OpenSearch does not tell its
state cheaply, so entries also expire after ``ttl_seconds``: there a remembered relaxation
outlives another process's write by at most that long. The engine re-checks a remembered
plan when it runs it and relaxes afresh if it no longer finds enough.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class StateMemo(Generic[V]):
    """Up to ``size`` values by key, all for one ``state``; thread-safe."""

    def __init__(self, size: int, ttl_seconds: float) -> None:
        self.size = size
        self.ttl_seconds = ttl_seconds
        self._state: Hashable = None
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, state: Hashable, key: Hashable) -> V | None:
        """The value remembered for ``key`` at ``state``, or None."""
        if self.size <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            if state != self._state:
                return None
            got = self._data.get(key)
            if got is None:
                return None
            if now - got[0] >= self.ttl_seconds:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return got[1]

    def put(self, state: Hashable, key: Hashable, value: V) -> None:
        """Remember ``value`` for ``key`` at ``state`` (a new state forgets the others)."""
        if self.size <= 0:
            return
        with self._lock:
            if state != self._state:
                self._data.clear()
                self._state = state
            self._data[key] = (time.monotonic(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._state = None
