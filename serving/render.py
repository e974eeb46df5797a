"""Turn ranked lists (``list[ScoredItem]``) into API output with item fields from the catalog."""

from __future__ import annotations

from functools import lru_cache

from fastapi import Response
from pydantic import BaseModel

from data.catalog import Catalog
from recsys.pipeline import Ranked
from recsys.types import Reason, ScoredItem
from serving.schemas import RankedItemOut, ReasonOut


@lru_cache(maxsize=65_536)
def reason_out(r: Reason) -> ReasonOut:
    """Reasons repeat from request to request (same source, model version, related item)."""
    return ReasonOut(**r.as_dict())


def item_out(it: ScoredItem, catalog: Catalog, *, debug: bool) -> RankedItemOut | None:
    item = catalog.get(it.item_id)
    if item is None:
        return None
    return RankedItemOut(
        item_id=it.item_id,
        score=round(it.score, 6),
        title=item.title,
        brand=item.brand,
        category=list(item.category),
        price=item.price,
        currency=item.currency,
        in_stock=item.stock > 0,
        reasons=[reason_out(r) for r in it.reasons],
        breakdown={k: round(v, 6) for k, v in it.breakdown.items()} if debug else None,
    )


def items_out(items: list[ScoredItem], catalog: Catalog, *, debug: bool) -> list[RankedItemOut]:
    out = []
    for it in items:
        o = item_out(it, catalog, debug=debug)
        if o is not None:
            out.append(o)
    return out


def list_fields(ranked: Ranked, request_id: str) -> dict[str, object]:
    """The fields every ranked-list response shares."""
    a = ranked.assignment
    return {
        "request_id": request_id,
        "strategy": ranked.strategy,
        "model_versions": dict(ranked.model_versions),
        "experiment": a.experiment if a else None,
        "variant": a.variant if a else None,
    }


def json_response(out: BaseModel) -> Response:
    """The body serialized once by pydantic's Rust serializer (``exclude_none``, like the
    routes' ``response_model_exclude_none``), skipping FastAPI's second validation pass of
    the response model. The route keeps ``response_model=`` for the OpenAPI schema."""
    return Response(out.model_dump_json(exclude_none=True), media_type="application/json")
