"""``GET /v1/recommendations``: top-k for a user or an anonymous shopper's recent history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from serving.deps import StorefrontCtx
from serving.params import (
    CategoryParam,
    DebugParam,
    IdListParam,
    OptionalUserParam,
    parse_category,
    parse_ids,
)
from serving.render import ranked_response
from serving.schemas import RecommendationsOut

router = APIRouter(prefix="/v1", tags=["recommendations"])


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
async def recommendations(
    ctx: StorefrontCtx,
    user_id: OptionalUserParam = None,
    n: Annotated[int, Query(ge=1, le=100, description="How many items.")] = 10,
    category: CategoryParam = None,
    history: IdListParam = None,
    exclude: IdListParam = None,
    exclude_purchased: Annotated[bool, Query(description="Leave out what the user bought.")] = True,
    debug: DebugParam = False,
) -> Response:
    request_id = ctx.request_id
    ranked = ctx.pipeline.recommend(
        user_id=user_id,
        history=parse_ids(history, "history"),
        n=n,
        category=parse_category(category),
        exclude_purchased=exclude_purchased,
        exclude=parse_ids(exclude, "exclude"),
        request_id=request_id,
    )
    return ranked_response(ranked, request_id, ctx.services.catalog, debug=debug, fields={"user_id": user_id})
