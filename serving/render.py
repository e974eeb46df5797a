"""Turn ranked lists (``list[ScoredItem]``) into API output with item fields from the catalog.

Ranked-list responses (recommendations, feed, similar, bought together, trending) are written
as plain dicts by orjson (a tenth of the stdlib encoder's time on a 10-item answer): the
fields and their order are those of the pydantic models in ``serving.schemas`` (which stay
the routes' ``response_model`` for OpenAPI, and ``tests/serving`` checks answers against
them), ``None`` fields left out as with ``response_model_exclude_none``. Building and
validating a pydantic object per item cost more than ranking the list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson
from fastapi import Response
from pydantic import BaseModel

from data.catalog import Catalog
from ranking.pipeline import Ranked
from ranking.types import Reason, ScoredItem
from serving.schemas import ReasonOut

Card = tuple[str, str | None, list[str], float, str, bool]
"""An item's display fields: title, brand, category path, price, currency, in stock."""


@lru_cache(maxsize=4096)
def reason_out(r: Reason) -> ReasonOut:
    """Reasons repeat from request to request (same source, model version, related item).
    4,096 of them: enough for the head, and a few MB per worker at most (65,536 filled for
    the whole of a 10-minute soak, docs/benchmarks.md)."""
    return ReasonOut(**r.as_dict())


REASON_CACHE = 1024
"""Reasons kept rendered per worker. Most repeat (a model's reason, the head items'); those
naming a related item rarely do. 1,024 fill within the first minute of traffic, so memory is
flat after it (4,096 still filled in the third minute of a soak)."""


@lru_cache(maxsize=REASON_CACHE)
def _reason_dict(r: Reason) -> dict[str, str]:
    return r.as_dict()


def card(catalog: Catalog, item_id: str) -> Card | None:
    """The display fields of a catalog item (None when it is not in the catalog)."""
    fast = getattr(catalog, "card", None)
    if fast is not None:
        return fast(item_id)  # type: ignore[no-any-return]
    item = catalog.get(item_id)
    if item is None:
        return None
    return (item.title, item.brand, list(item.category), item.price, item.currency, item.stock > 0)


def _score(x: float) -> float:
    return round(x, 6) if math.isfinite(x) else 0.0


def item_dict(it: ScoredItem, catalog: Catalog, *, debug: bool) -> dict[str, Any] | None:
    """One item as :class:`serving.schemas.RankedItemOut` writes it (None when not in the
    catalog)."""
    c = card(catalog, it.item_id)
    if c is None:
        return None
    title, brand, category, price, currency, in_stock = c
    out: dict[str, Any] = {"item_id": it.item_id, "score": _score(it.score), "title": title}
    if brand is not None:
        out["brand"] = brand
    out["category"] = category
    out["price"] = price
    out["currency"] = currency
    out["in_stock"] = in_stock
    out["reasons"] = [_reason_dict(r) for r in it.reasons]
    if debug:
        out["breakdown"] = {k: _score(v) for k, v in it.breakdown.items()}
    return out


def list_fields(ranked: Ranked, request_id: str) -> dict[str, object]:
    """The fields every ranked-list response shares (``None`` ones included)."""
    a = ranked.assignment
    return {
        "request_id": request_id,
        "strategy": ranked.strategy,
        "model_versions": dict(ranked.model_versions),
        "experiment": a.experiment if a else None,
        "variant": a.variant if a else None,
    }


def ranked_response(
    ranked: Ranked,
    request_id: str,
    catalog: Catalog,
    *,
    debug: bool,
    items: list[ScoredItem] | None = None,
    fields: Mapping[str, object] | None = None,
) -> Response:
    """A ranked-list response: the shared fields, then ``fields`` (the route's own, in its
    model's order), then the items (``items`` or all of ``ranked``), ``None`` left out."""
    body: dict[str, Any] = {
        k: v for k, v in list_fields(ranked, request_id).items() if v is not None
    }
    if fields:
        body.update((k, v) for k, v in fields.items() if v is not None)
    rows = []
    for it in ranked.items if items is None else items:
        d = item_dict(it, catalog, debug=debug)
        if d is not None:
            rows.append(d)
    body["items"] = rows
    return Response(orjson.dumps(body), media_type="application/json")


def json_response(out: BaseModel) -> Response:
    """The body serialized once by pydantic's Rust serializer (``exclude_none``, like the
    routes' ``response_model_exclude_none``), skipping FastAPI's second validation pass of
    the response model. The route keeps ``response_model=`` for the OpenAPI schema."""
    return Response(out.model_dump_json(exclude_none=True), media_type="application/json")
