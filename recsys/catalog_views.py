"""Cached catalog-wide orderings (newest, promoted, best rated) for the global sources."""

from __future__ import annotations

import heapq
import threading
import time

from data.catalog import Catalog


class CatalogViews:
    """Cached catalog-wide orderings (newest, promoted, best rated) refreshed every `ttl` s."""

    def __init__(self, catalog: Catalog, ttl: float = 30.0, depth: int = 1000) -> None:
        self.catalog = catalog
        self.ttl = ttl
        self.depth = depth
        self._at = -1e9
        self._newest: list[str] = []
        self._promoted: list[str] = []
        self._rated: list[str] = []
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._at = -1e9

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._at < self.ttl:
            return
        with self._lock:
            if now - self._at < self.ttl:
                return
            items = [it for it in self.catalog if it.is_active and it.stock > 0]
            self._newest = [
                it.item_id for it in heapq.nlargest(self.depth, items, key=lambda it: it.created_at)
            ]
            self._promoted = [
                it.item_id
                for it in items
                if "promoted" in it.tags or it.attributes.get("promoted") is True
            ][: self.depth]
            self._rated = [
                it.item_id
                for it in heapq.nlargest(self.depth, items, key=lambda it: (it.rating or 0.0, it.item_id))
            ]
            self._at = now

    def newest(self) -> list[str]:
        self._refresh()
        return self._newest

    def promoted(self) -> list[str]:
        self._refresh()
        return self._promoted

    def best_rated(self) -> list[str]:
        self._refresh()
        return self._rated
