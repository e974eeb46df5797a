"""``GET /v1/trending``: what is hot now, globally or in a category."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from serving.deps import StorefrontCtx
from serving.params import CategoryParam, DebugParam, parse_category
from serving.render import ranked_response
from serving.schemas import TrendingOut

router = APIRouter(prefix="/v1", tags=["trending"])


@router.get("/trending", response_model=TrendingOut, response_model_exclude_none=True, summary="Trending items")
async def trending(
    ctx: StorefrontCtx,
    n: Annotated[int, Query(ge=1, le=100)] = 10,
    category: CategoryParam = None,
    debug: DebugParam = False,
) -> Response:
    cat = parse_category(category)
    request_id = ctx.request_id
    ranked = ctx.pipeline.trending(n=n, category=cat, request_id=request_id)
    return ranked_response(ranked, request_id, ctx.services.catalog, debug=debug,
                           fields={"category": list(cat) if cat else None})
