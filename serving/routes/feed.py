"""``GET /v1/feed``: the blended home feed, paginated stably by request id."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from serving.deps import StorefrontCtx
from serving.direct import direct
from serving.errors import BadRequest, DocumentedRoute
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
from serving.schemas import FeedOut

router = APIRouter(route_class=DocumentedRoute, prefix="/v1", tags=["feed"])


class FeedQuery(QueryModel):
    user_id: OptionalUser = None
    page: Annotated[int, Field(ge=1, le=100)] = 1
    size: Annotated[int, Field(ge=1, le=100)] = 20
    category: CategoryPath = None
    history: IdList = None
    pagination_id: Annotated[
        str | None,
        Field(
            alias="request_id",
            min_length=1,
            max_length=128,
            pattern=r"^[A-Za-z0-9._:-]+$",
            description="The request_id of page 1, to fetch the following pages.",
        ),
    ] = None
    debug: Debug = False


@router.get(
    "/feed",
    response_model=FeedOut,
    response_model_exclude_none=True,
    summary="Home feed (for-you, trending, new arrivals, promoted)",
    description="One list blended from named slots with configurable weights, de-duplicated, "
    "only active in-stock items, diversified (at most N items of one category in any window). "
    "For page 2 and later pass the `request_id` of page 1: pages of one request id never "
    "repeat an item (the ranked list is kept for a while; an expired one is ranked afresh). "
    "The score breakdown of later pages is kept when page 1 asked for `debug=true`.",
)
@direct
async def feed(q: Annotated[FeedQuery, Query()], ctx: StorefrontCtx) -> Response:
    user_id, page, size, category, debug = q.user_id, q.page, q.size, q.category, q.debug
    pagination_id = q.pagination_id
    pipeline, pages = ctx.pipeline, ctx.feed_pages
    cat = parse_category(category)
    depth = pipeline.config.feed_depth
    if page * size > depth:
        raise BadRequest(f"page: page × size may be at most {depth}", field="page")
    rid = pagination_id or ctx.request_id
    key = f"{rid}|{user_id or ''}|{category or ''}"
    cached = pages.get(key) if pagination_id else None
    if cached is not None:
        ranked = cached
    else:
        ranked = pipeline.feed(
            user_id=user_id, history=parse_ids(q.history, "history"), category=cat, request_id=rid
        )
        if len(ranked.items) > depth:  # no page reaches further: keep (and store) no more
            ranked = replace(ranked, items=ranked.items[:depth])
        # the list stored first under this key wins (another worker may have ranked it too)
        ranked = pages.put(key, ranked, keep_breakdown=debug)
    start = (page - 1) * size
    window = ranked.items[start : start + size]
    out = ranked_response(
        ranked,
        rid,
        ctx.catalog,
        debug=debug,
        items=window,
        fields={
            "user_id": user_id,
            "page": page,
            "size": size,
            "has_more": len(ranked.items) > start + size,
        },
    )
    out.headers["X-Request-ID"] = rid
    return out
