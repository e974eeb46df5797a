"""``GET /v1/trending``: what is hot now, globally or in a category."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from serving.deps import StorefrontCtx
from serving.direct import direct
from serving.errors import DocumentedRoute
from serving.params import (
    CategoryPath,
    Debug,
    QueryModel,
    parse_category,
)
from serving.render import ranked_response
from serving.schemas import TrendingOut

router = APIRouter(route_class=DocumentedRoute, prefix="/v1", tags=["trending"])


class TrendingQuery(QueryModel):
    n: Annotated[int, Field(ge=1, le=100)] = 10
    category: CategoryPath = None
    debug: Debug = False


@router.get(
    "/trending",
    response_model=TrendingOut,
    response_model_exclude_none=True,
    summary="Trending items",
)
@direct
async def trending(q: Annotated[TrendingQuery, Query()], ctx: StorefrontCtx) -> Response:
    cat = parse_category(q.category)
    request_id = ctx.request_id
    ranked = ctx.pipeline.trending(n=q.n, category=cat, request_id=request_id)
    return ranked_response(ranked, request_id, ctx.catalog, debug=q.debug,
                           fields={"category": list(cat) if cat else None})
