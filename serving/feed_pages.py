"""Ranked feeds kept by request id, so page 2 of a feed never repeats page 1.

``GET /v1/feed`` ranks a 200-deep list on page 1 and stores it in the feed page store
(``stores.protocols.FeedPageStore``: SQLite under ``SHOPRANK_HOME`` or Redis) under
``"<request_id>|<user_id>|<category>"``; later pages with the same request id read it back,
on whichever replica they land. A stored list is **write-once until it expires**: the store
keeps the list already stored under a live key and returns *that* one, so two processes that
rank the same key at the same time still serve one list.

Bodies are compact bytes (≈ 5 KB for a 200-item feed): the scores as raw doubles (exact),
then JSON with the ids, each item's reasons as an index into the list's distinct reason sets,
the list's context and assignment, and score breakdowns only when ranked with ``debug``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import sys
from array import array
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

import orjson

from core.errors import StorageUnavailableError
from ranking.blend import BlendedItems
from ranking.hooks import Assignment
from ranking.pipeline import Ranked
from ranking.types import LazyItems, RankContext, Reason, ScoredItem
from serving.render import REASON_CACHE
from stores.protocols import FeedPageStore

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_FORMAT = 1
"""Body format version; a body of another version reads as a miss."""
_EMPTY: Mapping[str, float] = MappingProxyType({})
"""The breakdown of every item of a list kept without breakdowns (immutable, so shared)."""


def _user_of(key: str) -> str | None:
    parts = key.split("|")
    return parts[1] if len(parts) > 2 and parts[1] else None


class StoreRankedLists:
    """Ranked feeds between pages in a ``FeedPageStore``: every process serves page 2 from
    the list page 1 was cut from."""

    def __init__(self, pages: FeedPageStore) -> None:
        self.pages = pages

    def get(self, key: str) -> Ranked | None:
        try:
            body = self.pages.get(key)
        except StorageUnavailableError as exc:  # ranked afresh: a later page may overlap
            log.warning("feed page store unavailable (%s)", exc)
            return None
        if body is None:
            return None
        try:
            return decode_ranked(body)
        except ValueError:
            return None

    def put(self, key: str, items: Ranked, *, keep_breakdown: bool = False) -> Ranked:
        body = encode_ranked(items, keep_breakdown=keep_breakdown)
        try:
            stored = self.pages.put(key, body, user_id=_user_of(key))
        except StorageUnavailableError as exc:
            log.warning("feed page store unavailable (%s): page 1 served unstored", exc)
            return items
        return items if stored == body else decode_ranked(stored)

    def forget_user(self, user_id: str) -> int:
        return self.pages.forget_user(user_id)

    def close(self) -> None:
        """The stores close the feed page store."""


# --------------------------------------------------------------------------- serialization


def encode_ranked(r: Ranked, *, keep_breakdown: bool = False) -> bytes:
    """A ranked list as compact bytes (see the module docstring): the item count (4 bytes),
    the scores as little-endian doubles (exact, and 30× cheaper than JSON floats), then JSON
    (written by orjson: a fifth of the stdlib encoder's time; any JSON reader reads it)."""
    table: dict[Reason, int] = {}  # distinct reasons, by value
    by_id: dict[int, int] = {}  # reasons are mostly shared objects: hash each one once
    sets: dict[tuple[int, ...], int] = {}  # distinct reason sets, as table indices
    items = r.items
    if isinstance(items, BlendedItems):  # not built: read the columns
        ids, scores = items.ids, array("d", items.scores())
        set_of, reason_sets = items.reason_sets()
    else:
        ids, scores = [it.item_id for it in items], array("d", [it.score for it in items])
        set_of, reason_sets = _reason_sets(items)
    refs_of: list[int] = []  # reason_sets' index → the index of its refs in ``sets``
    for reasons in reason_sets:
        refs = []
        for x in reasons:
            j = by_id.get(id(x))
            if j is None:
                j = by_id[id(x)] = table.setdefault(x, len(table))
            refs.append(j)
        refs_of.append(sets.setdefault(tuple(refs), len(sets)))
    per_item = list(map(refs_of.__getitem__, set_of))
    head: dict[str, object] = {
        "v": _FORMAT,
        "strategy": r.strategy,
        "model_versions": dict(r.model_versions),
        "ctx": _fields_to_json(r.ctx),
        "assignment": _fields_to_json(r.assignment) if r.assignment is not None else None,
        "ids": ids,
        "reason_table": [_reason_json(x) for x in table],
        "reason_sets": list(sets),
        "reasons": per_item,
    }
    if keep_breakdown:
        head["breakdowns"] = [dict(it.breakdown) for it in items]
    if sys.byteorder != "little":
        scores.byteswap()
    return len(scores).to_bytes(4, "little") + scores.tobytes() + orjson.dumps(head)


def _reason_sets(items: Sequence[ScoredItem]) -> tuple[list[int], list[tuple[Reason, ...]]]:
    """Each item's reasons as an index into the distinct reason tuples, and those tuples
    (told apart by the reasons' identities: they are mostly shared objects)."""
    index: dict[tuple[int, ...], int] = {}
    sets: list[tuple[Reason, ...]] = []
    per_item = []
    for it in items:  # the items hold their reasons alive while their ids are keys
        key = tuple(map(id, it.reasons))
        k = index.get(key)
        if k is None:
            k = index[key] = len(sets)
            sets.append(it.reasons)
        per_item.append(k)
    return per_item, sets


def decode_ranked(body: bytes) -> Ranked:
    """The list :func:`encode_ranked` wrote. Raises ``ValueError`` for another format."""
    n = int.from_bytes(body[:4], "little")
    scores = array("d")
    scores.frombytes(body[4 : 4 + 8 * n])
    if sys.byteorder != "little":
        scores.byteswap()
    head = orjson.loads(body[4 + 8 * n :])
    if head.get("v") != _FORMAT:
        raise ValueError(f"feed cache body format {head.get('v')!r}, expected {_FORMAT}")
    table = [_fields_from_json(Reason, x) for x in head["reason_table"]]
    sets = [tuple(table[k] for k in refs) for refs in head["reason_sets"]]
    ids: list[str] = head["ids"]
    if len(ids) != n:
        raise ValueError(f"feed cache body holds {len(ids)} ids and {n} scores")
    bds = head.get("breakdowns")
    refs: list[int] = head["reasons"]
    if len(refs) != n or (bds is not None and len(bds) != n):
        raise ValueError(f"feed cache body holds {n} items and other counts of reasons")

    def build(p: int) -> ScoredItem:  # a page shows a few of the list's items
        bd = _EMPTY if bds is None else MappingProxyType(_finite(bds[p]))
        return ScoredItem(ids[p], scores[p], sets[refs[p]], bd)

    items = LazyItems(n, build)
    a = head["assignment"]
    return Ranked(
        items=items,
        ctx=_fields_from_json(RankContext, head["ctx"]),
        strategy=head["strategy"],
        model_versions=MappingProxyType(head["model_versions"]),
        assignment=_fields_from_json(Assignment, a) if a is not None else None,
    )


def _finite(bd: dict[str, Any]) -> dict[str, float]:
    """A stored breakdown: orjson writes a NaN or infinite component as null, read as NaN
    (the answer shows it as 0, as page 1 did)."""
    if None in bd.values():
        return {k: math.nan if v is None else v for k, v in bd.items()}
    return bd


def _fields_to_json(obj: object) -> dict[str, object]:
    """A flat frozen dataclass's fields as JSON values (mappings, tuples, datetimes); fields
    equal to their plain default are left out."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and v == f.default and type(v) is type(f.default):
            continue
        if isinstance(v, datetime):
            v = v.isoformat()
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, Mapping):
            v = dict(v)
        out[f.name] = v
    return out


@functools.lru_cache(maxsize=REASON_CACHE)
def _reason_json(reason: Reason) -> dict[str, object]:
    """:func:`_fields_to_json` of a reason (they repeat from list to list; the dict is only
    read)."""
    return _fields_to_json(reason)


@functools.cache
def _converters(cls: type) -> dict[str, Callable[[Any], object]]:
    """Field name → how to rebuild its value from JSON, read from the (string) annotations."""
    out: dict[str, Callable[[Any], object]] = {}
    for f in dataclasses.fields(cls):
        ann = str(f.type)
        if ann.startswith("datetime"):
            out[f.name] = datetime.fromisoformat
        elif ann.startswith("tuple"):
            out[f.name] = tuple
        elif ann.startswith("Mapping"):
            out[f.name] = MappingProxyType
    return out


def _fields_from_json(cls: type[_T], data: dict[str, Any]) -> _T:
    """Inverse of :func:`_fields_to_json`."""
    conv = _converters(cls)
    if conv:
        data = {k: (conv[k](v) if k in conv and v is not None else v) for k, v in data.items()}
    return cls(**data)
