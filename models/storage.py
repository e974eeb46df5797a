"""How :meth:`models.base.Recommender.load` reads a saved model's files.

:class:`ModelReader` (the default) reads everything into memory. :class:`MappedReader` is
serving's lean reading: arrays memory-mapped straight out of the uncompressed ``arrays.npz``
(no copy; worker processes share the pages), one item vocabulary and one category list for
every model trained on the same items, and the user side (user ids as :class:`SortedIds`, the
training rows) only when asked for — item-to-item and non-personal models never look users up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from models.arrays import mmap_npz
from models.vocab import SortedIds, Vocabulary

_SHARED_LIMIT = 16
_ITEM_VOCABS: OrderedDict[str, tuple[Vocabulary, list[str]]] = OrderedDict()
_JSON_LISTS: OrderedDict[str, list[str]] = OrderedDict()
_LOCK = threading.Lock()


class ModelReader:
    """Reads every file of a saved model into memory."""

    with_users: bool = True
    """False: the model is loaded without its user side (no user ids, no training rows)."""

    def arrays(self, path: Path) -> AbstractContextManager[Mapping[str, np.ndarray]]:
        return np.load(path, allow_pickle=False)  # type: ignore[no-any-return]

    def users(self, path: Path) -> Vocabulary | SortedIds:
        return Vocabulary.load(path)

    def items(self, path: Path) -> Vocabulary:
        return Vocabulary.load(path)

    def categories(self, path: Path) -> list[str] | None:
        return json.loads(path.read_text("utf-8")) if path.exists() else None  # type: ignore[no-any-return]


class MappedReader(ModelReader):
    """Serving's lean reading (see the module doc). ``cache``: the version's folder of derived
    arrays (:func:`models.arrays.shared_array`), where the sorted user ids go."""

    def __init__(self, *, with_users: bool, cache: Path | None = None) -> None:
        self.with_users = with_users
        self.cache = cache

    def arrays(self, path: Path) -> AbstractContextManager[Mapping[str, np.ndarray]]:
        return contextlib.nullcontext(mmap_npz(path))

    def users(self, path: Path) -> Vocabulary | SortedIds:
        return SortedIds.shared(self.cache, lambda: json.loads(path.read_text("utf-8")))

    def items(self, path: Path) -> Vocabulary:
        return shared_vocabulary(path)

    def categories(self, path: Path) -> list[str] | None:
        return _shared_json_list(path) if path.exists() else None


def shared_vocabulary(path: Path) -> Vocabulary:
    """The item vocabulary, one object for every model trained on the same items (they
    usually all are): saves a dict and a list of ids per model and worker."""
    raw = path.read_bytes()
    key = hashlib.sha256(raw).hexdigest()
    with _LOCK:
        got = _ITEM_VOCABS.get(key)
        if got is not None:
            _ITEM_VOCABS.move_to_end(key)
            return got[0]
    ids = json.loads(raw)
    if not isinstance(ids, list) or not all(isinstance(x, str) for x in ids):
        raise ValueError(f"{path.name}: expected a JSON list of id strings")
    vocab = Vocabulary(np.asarray(ids, dtype=object))
    with _LOCK:
        _ITEM_VOCABS[key] = (vocab, ids)
        while len(_ITEM_VOCABS) > _SHARED_LIMIT:
            _ITEM_VOCABS.popitem(last=False)
    return vocab


def _shared_json_list(path: Path) -> list[str]:
    """A JSON list of strings (item categories), one list for identical files."""
    raw = path.read_bytes()
    key = hashlib.sha256(raw).hexdigest()
    with _LOCK:
        got = _JSON_LISTS.get(key)
        if got is not None:
            return got
    value = json.loads(raw)
    with _LOCK:
        _JSON_LISTS[key] = value
        while len(_JSON_LISTS) > _SHARED_LIMIT:
            _JSON_LISTS.popitem(last=False)
    return value  # type: ignore[no-any-return]


def id_list(vocab: Vocabulary) -> list[str]:
    """The ids of a vocabulary as a list of ``str``: the list read with a shared vocabulary,
    else a new one."""
    with _LOCK:
        for v, ids in _ITEM_VOCABS.values():
            if v is vocab:
                return ids
    return [str(x) for x in vocab.ids]
