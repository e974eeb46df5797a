"""Vocabulary: a fixed mapping between external ids (strings) and row/column numbers.

Built once from the training data and saved next to a model as a JSON list, so a loaded
model speaks item and user ids without the training data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


class Vocabulary:
    """Ids ↔ indices. Index ``i`` is ``ids[i]``; lookups of unknown ids give ``-1``."""

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[str]) -> None:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=object)
        self._ids = arr
        self._index: dict[str, int] | None = None

    @property
    def ids(self) -> np.ndarray:
        """The ids in index order (object array of ``str``)."""
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._lookup()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:  # pragma: no cover - vocabularies are not dict keys
        return id(self)

    def _lookup(self) -> dict[str, int]:
        if self._index is None:
            self._index = {str(k): i for i, k in enumerate(self._ids)}
        return self._index

    def index(self, item_id: str) -> int:
        """Index of one id, or ``-1`` if unknown."""
        return self._lookup().get(item_id, -1)

    def indices(self, ids: Sequence[str] | Iterable[str]) -> np.ndarray:
        """Indices of many ids (``int64``), ``-1`` for unknown ones."""
        lookup = self._lookup()
        return np.fromiter((lookup.get(i, -1) for i in ids), dtype=np.int64)

    def id(self, index: int) -> str:
        return str(self._ids[index])

    def to_ids(self, indices: np.ndarray) -> list[str]:
        return [str(x) for x in self._ids[np.asarray(indices, dtype=np.int64)]]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([str(x) for x in self._ids], ensure_ascii=False), "utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        ids = json.loads(path.read_text("utf-8"))
        if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
            raise ValueError(f"{path.name}: expected a JSON list of id strings")
        return cls(np.asarray(ids, dtype=object))
