"""Per-item facts online ranking reads on every request, one dict lookup each.

Filtering and diversity ask, for hundreds of candidates per request, "active and in stock?",
"which category group?" and "under this category?". Reading them from the catalog's pydantic
items costs several attribute reads and a string join per item; :class:`CatalogIndex` keeps
them precomputed (``item_id → (recommendable, group, category path)``) and is refreshed for
the items the catalog API changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from data.catalog import Catalog
from data.models import CATEGORY_SEPARATOR, Item

Facts = tuple[bool, str | None, tuple[str, ...]]


def _facts(item: Item) -> Facts:
    group = CATEGORY_SEPARATOR.join(item.category) if item.category else None
    return (item.is_active and item.stock > 0, group, tuple(item.category))


class CatalogIndex:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._facts: dict[str, Facts] = {}
        self.rebuild()

    def rebuild(self) -> None:
        facts = {it.item_id: _facts(it) for it in self.catalog}
        with self._lock:
            self._facts = facts

    def refresh(self, item_ids: Iterable[str]) -> None:
        """Re-read these items from the catalog (after an upsert or a delete)."""
        with self._lock:
            facts = dict(self._facts)
            for i in item_ids:
                item = self.catalog.get(i)
                if item is None:
                    facts.pop(i, None)
                else:
                    facts[i] = _facts(item)
            self._facts = facts

    def recommendable(self, item_id: str) -> bool:
        f = self._facts.get(item_id)
        return f is not None and f[0]

    def group(self, item_id: str) -> str | None:
        f = self._facts.get(item_id)
        return f[1] if f is not None else None

    def in_category(self, item_id: str, prefix: tuple[str, ...]) -> bool:
        f = self._facts.get(item_id)
        return f is not None and f[2][: len(prefix)] == prefix

    def keep(self, item_id: str, exclude: set[str] | frozenset[str], category: tuple[str, ...] | None) -> bool:
        """Recommendable, not excluded and under ``category`` (when given)."""
        if item_id in exclude:
            return False
        f = self._facts.get(item_id)
        return f is not None and f[0] and (category is None or f[2][: len(category)] == category)
