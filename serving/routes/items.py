"""``/v1/items/{item_id}/similar`` and ``/v1/items/{item_id}/bought-together``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import Field

from data.catalog import Catalog
from ranking.pipeline import Ranked
from serving.deps import StorefrontCtx
from serving.errors import DocumentedRoute, NotFound
from serving.params import Debug, OptionalUser, QueryModel
from serving.render import ranked_response
from serving.schemas import ItemListOut

router = APIRouter(route_class=DocumentedRoute, prefix="/v1/items", tags=["items"])

ItemIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\s/\\]+$")]


class ItemListQuery(QueryModel):
    n: Annotated[int, Field(ge=1, le=100)] = 10
    user_id: OptionalUser = None
    debug: Debug = False


ItemListParams = Annotated[ItemListQuery, Query()]


def _check(catalog: Catalog, item_id: str) -> None:
    if item_id not in catalog:
        raise NotFound(f"item_id: no item {item_id!r} in the catalog", field="item_id")


def _respond(
    ranked: Ranked, catalog: Catalog, request_id: str, item_id: str, debug: bool
) -> Response:
    return ranked_response(ranked, request_id, catalog, debug=debug, fields={"item_id": item_id})


@router.get(
    "/{item_id}/similar",
    response_model=ItemListOut,
    response_model_exclude_none=True,
    summary="Items similar to this one",
)
async def similar(item_id: ItemIdPath, q: ItemListParams, ctx: StorefrontCtx) -> Response:
    _check(ctx.catalog, item_id)
    ranked = ctx.pipeline.similar(
        item_id=item_id, n=q.n, user_id=q.user_id, request_id=ctx.request_id
    )
    return _respond(ranked, ctx.catalog, ctx.request_id, item_id, q.debug)


@router.get(
    "/{item_id}/bought-together",
    response_model=ItemListOut,
    response_model_exclude_none=True,
    summary="Items frequently bought together with this one",
)
async def bought_together(
    item_id: ItemIdPath, q: ItemListParams, ctx: StorefrontCtx
) -> Response:
    _check(ctx.catalog, item_id)
    ranked = ctx.pipeline.bought_together(
        item_id=item_id, n=q.n, user_id=q.user_id, request_id=ctx.request_id
    )
    return _respond(ranked, ctx.catalog, ctx.request_id, item_id, q.debug)
