"""``GET /v1/recommendations``: top-k for a user or an anonymous shopper's recent history."""

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
    IdList,
    OptionalUser,
    QueryModel,
    parse_category,
    parse_ids,
)
from serving.render import ranked_response
from serving.schemas import RecommendationsOut

router = APIRouter(route_class=DocumentedRoute, prefix="/v1", tags=["recommendations"])


class RecommendationsQuery(QueryModel):
    user_id: OptionalUser = None
    n: Annotated[int, Field(ge=1, le=100, description="How many items.")] = 10
    category: CategoryPath = None
    history: IdList = None
    exclude: IdList = None
    exclude_purchased: Annotated[bool, Field(description="Leave out what the user bought.")] = True
    debug: Debug = False


@router.get(
    "/recommendations",
    response_model=RecommendationsOut,
    response_model_exclude_none=True,
    summary="Personalized top-k",
    description="For a known user with consent: collaborative filtering blended with their "
    "real-time history. For an anonymous shopper: pass `history` (recently viewed item ids, "
    "most recent first) for item-to-item cold start. Nothing known: trending. A user without "
    "consent gets non-personalized results.",
)
@direct
async def recommendations(
    q: Annotated[RecommendationsQuery, Query()], ctx: StorefrontCtx
) -> Response:
    request_id = ctx.request_id
    ranked = ctx.pipeline.recommend(
        user_id=q.user_id,
        history=parse_ids(q.history, "history"),
        n=q.n,
        category=parse_category(q.category),
        exclude_purchased=q.exclude_purchased,
        exclude=parse_ids(q.exclude, "exclude"),
        request_id=request_id,
    )
    return ranked_response(
        ranked, request_id, ctx.catalog, debug=q.debug, fields={"user_id": q.user_id}
    )
