"""Catalog sync (admin): upsert and delete items; the search index follows."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path

from data.models import Item
from serving.deps import AdminDep, CatalogDep, CatalogWritesDep, RequestIdDep
from serving.errors import BadRequest, DocumentedRoute, NotFound
from serving.schemas import DeletedOut, ItemOut, ItemsUpsertIn, ItemsUpsertOut

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/catalog", tags=["catalog"], dependencies=[AdminDep], route_class=DocumentedRoute
)

ItemIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\s/\\]+$")]


_MIN_YEAR, _MAX_YEAR = 1678, 2261
"""Dates the search indexes can store (64-bit nanoseconds since 1970)."""


def _check_dates(items: list[Item], prefix: str) -> None:
    for k, it in enumerate(items):
        if not _MIN_YEAR <= it.created_at.year <= _MAX_YEAR:
            where = f"{prefix}{k}.created_at" if prefix else "created_at"
            raise BadRequest(f"{where}: {it.created_at.isoformat()} is out of range; use a date "
                             f"between {_MIN_YEAR} and {_MAX_YEAR}", field=where)


@router.put("/items", response_model=ItemsUpsertOut, summary="Add or replace items (batch)")
def upsert_items(
    body: ItemsUpsertIn, writes: CatalogWritesDep, request_id: RequestIdDep
) -> ItemsUpsertOut:
    ids = [it.item_id for it in body.items]
    if len(set(ids)) != len(ids):
        raise BadRequest("items: the same item_id appears twice in the batch", field="items")
    _check_dates(list(body.items), "items.")
    indexed, pending = writes.apply(list(body.items), [])
    return ItemsUpsertOut(request_id=request_id, upserted=len(body.items), indexed=indexed,
                          index_pending=pending)


@router.put("/items/{item_id}", response_model=ItemsUpsertOut, summary="Add or replace one item")
def upsert_item(
    item_id: ItemIdPath, body: Item, writes: CatalogWritesDep, request_id: RequestIdDep
) -> ItemsUpsertOut:
    if body.item_id != item_id:
        raise BadRequest(
            f"item_id: body has {body.item_id!r} but the path has {item_id!r}", field="item_id"
        )
    _check_dates([body], "")
    indexed, pending = writes.apply([body], [])
    return ItemsUpsertOut(request_id=request_id, upserted=1, indexed=indexed,
                          index_pending=pending)


@router.get("/items/{item_id}", response_model=ItemOut, summary="One item as stored")
def get_item(item_id: ItemIdPath, catalog: CatalogDep) -> ItemOut:
    item = catalog.get(item_id)
    if item is None:
        raise NotFound(f"item_id: no item {item_id!r} in the catalog", field="item_id")
    return ItemOut(**item.model_dump(), recommendable=catalog.is_recommendable(item_id))


@router.delete("/items/{item_id}", response_model=DeletedOut, summary="Delete an item")
def delete_item(
    item_id: ItemIdPath, writes: CatalogWritesDep, request_id: RequestIdDep
) -> DeletedOut:
    if item_id not in writes.catalog:
        raise NotFound(f"item_id: no item {item_id!r} in the catalog", field="item_id")
    writes.apply([], [item_id])
    return DeletedOut(request_id=request_id, deleted=True)
