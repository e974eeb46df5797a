"""Vocabulary: a fixed mapping between external ids (strings) and row/column numbers.

Built once from the training data and saved next to a model as a JSON list, so a loaded
model speaks item and user ids without the training data. :class:`SortedIds` is the user
vocabulary serving loads: sorted numpy ids, no Python object per id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from pathlib import Path

import numpy as np

from data.lookup import sorted_row
from models.arrays import shared_array


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
        # map() calls the dict's get at C speed: twice as fast as a generator expression
        return np.fromiter(map(self._lookup().get, ids, repeat(-1)), dtype=np.int64)

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


class SortedIds:
    """A user vocabulary without a Python object per id: sorted numpy ids + their indices.

    Speaks the part of ``models.vocab.Vocabulary`` the models use on users
    (``len``, ``index``, ``indices``, ``ids``, ``to_ids``)."""

    __slots__ = ("_last", "_order", "_sorted")

    def __init__(self, ids: Sequence[str] | np.ndarray) -> None:
        arr = np.asarray(ids, dtype=str) if len(ids) else np.array([], dtype="U1")
        self._order = np.argsort(arr, kind="stable").astype(np.int64)
        self._sorted = arr[self._order]
        self._last: tuple[str, int] = ("", -1)
        """The last lookup: a request asks for the same user several times in a row."""

    @classmethod
    def shared(cls, folder: Path | None, load: Callable[[], Sequence[str]]) -> SortedIds:
        """The ids ``load`` gives, sorted, as two :func:`shared_array` files in ``folder``:
        every worker maps the same pages instead of keeping its own copy, and a start that
        finds the files reads neither the JSON nor sorts."""
        if folder is None:
            return cls(load())
        made: list[SortedIds] = []

        def build(part: str) -> np.ndarray:
            if not made:
                made.append(cls(load()))
            return made[0]._sorted if part == "sorted" else made[0]._order

        out = cls.__new__(cls)
        out._sorted = shared_array(folder, "user_ids_sorted", lambda: build("sorted"))
        out._order = shared_array(folder, "user_ids_order", lambda: build("order"))
        out._last = ("", -1)
        if len(out._sorted) != len(out._order):  # files of two different builds: not to be trusted
            return made[0] if made else cls(load())
        return out

    def __len__(self) -> int:
        return len(self._sorted)

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and self.index(user_id) >= 0

    def index(self, user_id: str) -> int:
        last = self._last
        if last[0] == user_id and user_id:
            return last[1]
        r = sorted_row(self._sorted, user_id)
        got = int(self._order[r]) if r >= 0 else -1
        self._last = (user_id, got)
        return got

    def indices(self, ids: Iterable[str]) -> np.ndarray:
        return np.fromiter((self.index(i) for i in ids), dtype=np.int64)

    @property
    def ids(self) -> np.ndarray:
        out = np.empty(len(self._sorted), dtype=object)
        out[self._order] = self._sorted
        return out

    def id(self, index: int) -> str:
        return str(self.ids[index])

    def to_ids(self, indices: np.ndarray) -> list[str]:
        ids = self.ids
        return [str(ids[i]) for i in np.asarray(indices, dtype=np.int64)]
