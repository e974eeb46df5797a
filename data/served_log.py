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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson


@dataclass(frozen=True, slots=True)
class ServedList:
    request_id: str
    at: datetime
    surface: str
    user_id: str | None
    items: tuple[tuple[str, Mapping[str, float]], ...]
    """(item id, score breakdown) in the order shown."""
    variant: str | None = None
    ranker_version: str | None = None
    """The ranker version that ordered the list (None: the hand blend)."""
    query: str | None = None


def served_body(served: ServedList) -> dict[str, object]:
    """A list's fields besides request id, time and user, as the served-list store keeps
    them (JSON). The items are one JSON text (``items_json``, written by orjson: the log
    writer's encoder then copies a string instead of encoding 50 breakdowns, a tenth of a
    feed request's CPU). Scores are kept as float32 keeps them, what the ranker's features
    read: the shortest decimal that reads back as the same float32 (7 to 9 digits), all of a
    list's rounded at once by numpy and orjson; a NaN or infinite one is kept as it is."""
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


def served_from(request_id: str, at: datetime, user_id: str | None,
                body: Mapping[str, Any]) -> ServedList:
    """The list :func:`served_body` wrote (an erased user's has no ``query``; lists logged
    before ``items_json`` have their items as JSON lists under ``items``)."""
    text = body.get("items_json")
    items = json.loads(text) if text is not None else body.get("items", ())
    return ServedList(request_id, at, str(body.get("surface", "")), user_id,
                      tuple((i, bd) for i, bd in items),
                      body.get("variant"), body.get("ranker"), body.get("query"))
