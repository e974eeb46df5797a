"""The served-list log's records: what each ranked list showed, item by item, for the
learned ranker.

The request log keeps one row per request for attribution; this log keeps the list itself —
each item in the order shown with the score breakdown the blend gave it (every candidate
source's score and blend share) — which is what ``training.ranker_data`` turns into training
lists once events tell what followed. The lists are kept in the served-list store
(``stores.served``, written through ``stores.served_lists.ServedLog``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload

import numpy as np
import orjson


@dataclass(frozen=True, slots=True)
class ServedList:
    request_id: str
    at: datetime
    surface: str
    user_id: str | None
    items: Sequence[tuple[str, Mapping[str, float]]]
    """(item id, score breakdown) in the order shown (a tuple, or :class:`BreakdownColumns`)."""
    variant: str | None = None
    ranker_version: str | None = None
    """The ranker version that ordered the list (None: the hand blend)."""
    query: str | None = None


class BreakdownColumns(Sequence[tuple[str, Mapping[str, float]]]):
    """A list's items and score breakdowns as columns: ``values[k, j]`` is entry ``keys[k]``
    of item ``ids[j]``'s breakdown, NaN where it has none (so no entry is NaN). What the blend
    holds per source; :func:`served_body` writes it without a dict per item."""

    __slots__ = ("ids", "keys", "values")

    def __init__(self, ids: list[str], keys: list[str], values: np.ndarray) -> None:
        self.ids, self.keys, self.values = ids, keys, values

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, j: int) -> tuple[str, Mapping[str, float]]: ...

    @overload
    def __getitem__(self, j: slice) -> list[tuple[str, Mapping[str, float]]]: ...

    def __getitem__(
        self, j: int | slice
    ) -> tuple[str, Mapping[str, float]] | list[tuple[str, Mapping[str, float]]]:
        if isinstance(j, slice):
            return [self[k] for k in range(*j.indices(len(self.ids)))]
        row = self.values[:, j].tolist()
        return self.ids[j], {k: v for k, v in zip(self.keys, row, strict=True) if v == v}


def served_body(served: ServedList) -> dict[str, object]:
    """A list's fields besides request id, time and user, as the served-list store keeps
    them (JSON). The items are one JSON text (``items_json``, written by orjson: the log
    writer's encoder then copies a string instead of encoding 50 breakdowns, a tenth of a
    feed request's CPU). Scores are kept as float32 keeps them, what the ranker's features
    read: the shortest decimal that reads back as the same float32 (7 to 9 digits), all of a
    list's rounded at once by numpy and orjson; a NaN or infinite one is kept as it is."""
    if isinstance(served.items, BreakdownColumns):
        text = _columns_json(served.items)
        if text is not None:
            return {
                "surface": served.surface, "variant": served.variant,
                "ranker": served.ranker_version, "query": served.query, "columns_json": text,
            }
    flat = [v for _, bd in served.items for v in bd.values()]
    with np.errstate(over="ignore"):  # a score beyond float32 is kept as it is, below
        f32 = np.asarray(flat, dtype=np.float64).astype(np.float32)
    rounded: list[float | None] = orjson.loads(
        orjson.dumps(f32, option=orjson.OPT_SERIALIZE_NUMPY))
    finite = None not in rounded  # orjson writes NaN and infinities as null
    if not finite:
        rounded = [v if r is None else r for r, v in zip(rounded, flat, strict=True)]
    values = iter(rounded)
    # zip reads the keys first: each item takes exactly its own values
    items = [[i, dict(zip(bd.keys(), values, strict=False))] for i, bd in served.items]
    text = (orjson.dumps(items).decode() if finite
            else json.dumps(items, ensure_ascii=False, separators=(",", ":")))
    return {
        "surface": served.surface, "variant": served.variant,
        "ranker": served.ranker_version, "query": served.query, "items_json": text,
    }


def _columns_json(cols: BreakdownColumns) -> str | None:
    """``{"ids", "keys", "values"}`` as JSON, values as float32 keeps them (null: no entry);
    None when a value does not fit in a float32 (it would read as no entry)."""
    with np.errstate(over="ignore"):
        f32 = cols.values.astype(np.float32)
    if np.isinf(f32).any():
        return None
    return orjson.dumps({"ids": cols.ids, "keys": cols.keys, "values": f32},
                        option=orjson.OPT_SERIALIZE_NUMPY).decode()


def served_from(request_id: str, at: datetime, user_id: str | None,
                body: Mapping[str, Any]) -> ServedList:
    """The list :func:`served_body` wrote (an erased user's has no ``query``; lists logged
    before ``columns_json`` and ``items_json`` have their items as JSON lists under
    ``items``)."""
    columns, text = body.get("columns_json"), body.get("items_json")
    items: Sequence[Any]
    if columns is not None:
        got = json.loads(columns)
        keys, rows = got["keys"], list(zip(*got["values"], strict=True)) or [()] * len(got["ids"])
        items = [(i, {k: v for k, v in zip(keys, row, strict=True) if v is not None})
                 for i, row in zip(got["ids"], rows, strict=True)]
    else:
        items = json.loads(text) if text is not None else body.get("items", ())
    return ServedList(request_id, at, str(body.get("surface", "")), user_id,
                      tuple((i, bd) for i, bd in items),
                      body.get("variant"), body.get("ranker"), body.get("query"))
