"""An in-memory view of the catalog, shared by ranking, rules and the API.

Loaded from ``items.jsonl`` (or any loader format); upserts and deletes from the API keep it
current and are written back with :meth:`Catalog.save` (atomic replace). At 100k items this is
a few hundred MB at most; a larger shop keeps its catalog in OpenSearch and loads a projection.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from data.models import Item


class Catalog:
    def __init__(self, items: Iterable[Item] = ()) -> None:
        self._items: dict[str, Item] = {}
        self._by_leaf: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self._lock = threading.RLock()
        self.upsert(items)

    # reading -----------------------------------------------------------------
    def get(self, item_id: str) -> Item | None:
        return self._items.get(item_id)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Item]:
        return iter(list(self._items.values()))

    def is_recommendable(self, item_id: str) -> bool:
        """Active and in stock: the only items a list may show."""
        item = self._items.get(item_id)
        return item is not None and item.is_active and item.stock > 0

    def in_category(self, item_id: str, prefix: tuple[str, ...]) -> bool:
        item = self._items.get(item_id)
        return item is not None and item.category[: len(prefix)] == prefix

    def items_in_category(self, prefix: tuple[str, ...]) -> set[str]:
        with self._lock:
            out: set[str] = set()
            for leaf, ids in self._by_leaf.items():
                if leaf[: len(prefix)] == prefix:
                    out |= ids
            return out

    def categories(self) -> list[tuple[str, ...]]:
        return sorted(self._by_leaf)

    # writing -----------------------------------------------------------------
    def upsert(self, items: Iterable[Item]) -> int:
        n = 0
        with self._lock:
            for item in items:
                old = self._items.get(item.item_id)
                if old is not None:
                    self._by_leaf[old.category].discard(item.item_id)
                self._items[item.item_id] = item
                self._by_leaf[item.category].add(item.item_id)
                n += 1
        return n

    def delete(self, item_ids: Iterable[str]) -> int:
        n = 0
        with self._lock:
            for item_id in item_ids:
                old = self._items.pop(item_id, None)
                if old is not None:
                    self._by_leaf[old.category].discard(item_id)
                    n += 1
        return n

    # files -------------------------------------------------------------------
    @classmethod
    def from_jsonl(cls, path: Path) -> Catalog:
        """Read a clean items.jsonl (as written by :meth:`save` or the generator)."""
        with open(path, encoding="utf-8") as fh:
            return cls(Item.model_validate_json(line) for line in fh if line.strip())

    def save(self, path: Path) -> None:
        """Write all items to `path` atomically (temp file, fsync, rename)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for item in self:
                    fh.write(json.dumps(item.model_dump(mode="json"), ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
