"""Live popularity: decayed event counts per item, updated as events arrive.

This is the trending signal when no trained trending model exists yet, and a freshness
signal on top of one: an item bought an hour ago counts more than one bought last week.
Counts decay with a half-life; decay is applied lazily with a growing scale factor, so an
update is O(1).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Iterable

from data.models import Event

LIVE_WEIGHTS = {
    "view": 1.0,
    "click": 1.0,
    "add_to_cart": 3.0,
    "favorite": 2.0,
    "purchase": 5.0,
    "share": 2.0,
}


class LiveCounts:
    def __init__(self, half_life_hours: float = 24.0, max_items: int = 500_000) -> None:
        self._rate = math.log(2) / (half_life_hours * 3600.0)
        self._t0 = time.time()
        self._counts: dict[str, float] = {}
        self._max_items = max_items
        self._lock = threading.Lock()

    def _scale(self, ts: float) -> float:
        return math.exp(min(self._rate * (ts - self._t0), 600.0))

    def record(self, events: Iterable[Event]) -> None:
        with self._lock:
            for ev in events:
                w = LIVE_WEIGHTS.get(ev.type)
                if not w or ev.item_id is None:
                    continue
                ts = min(ev.timestamp.timestamp(), time.time())
                self._counts[ev.item_id] = self._counts.get(ev.item_id, 0.0) + w * self._scale(ts)
            if len(self._counts) > self._max_items:
                keep = heapq.nlargest(
                    self._max_items // 2, self._counts.items(), key=lambda kv: kv[1]
                )
                self._counts = dict(keep)

    def top(self, n: int, *, allowed: Iterable[str] | None = None) -> list[tuple[str, float]]:
        """The `n` hottest items (score normalized so the hottest is 1.0)."""
        with self._lock:
            if allowed is None:
                pairs = list(self._counts.items())
            else:
                pairs = [(i, self._counts[i]) for i in allowed if i in self._counts]
        best = heapq.nlargest(n, pairs, key=lambda kv: kv[1])
        if not best:
            return []
        top = best[0][1] or 1.0
        return [(i, c / top) for i, c in best]

    def forget(self, item_ids: Iterable[str]) -> None:
        with self._lock:
            for i in item_ids:
                self._counts.pop(i, None)

    def __len__(self) -> int:
        return len(self._counts)
