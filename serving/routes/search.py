"""``/v1/search`` (GET for simple calls, POST for filters and facets) and autocomplete.

The search itself is ``serving.usecases.search.ProductSearch`` (stages in :mod:`ranking.search`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from data.models import CATEGORY_SEPARATOR
from search.query import SearchRequest, SortMode, TermsFilter
from serving.deps import ProductSearchDep, RequestIdDep
from serving.errors import DocumentedRoute
from serving.params import (
    CategoryPath,
    Debug,
    OptionalUser,
    QueryModel,
    parse_category,
)
from serving.render import json_response
from serving.schemas import AutocompleteOut, SearchOut, SuggestionOut

router = APIRouter(route_class=DocumentedRoute, prefix="/v1/search", tags=["search"])


class SearchIn(SearchRequest):
    """A search request (see ``search.query.SearchRequest``) plus ``debug``."""

    debug: bool = False


@router.post(
    "",
    response_model=SearchOut,
    response_model_exclude_none=True,
    summary="Search with filters, facets and sorting",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "text": "連衣裙",
                        "filters": [{"field": "price", "lte": 1000}],
                        "facets": ["brand", "price"],
                        "user_id": "u1",
                    }
                }
            }
        }
    },
)
def search_post(body: SearchIn, search: ProductSearchDep, request_id: RequestIdDep) -> Response:
    req = SearchRequest.model_validate(body.model_dump(exclude={"debug"}, exclude_none=True))
    return json_response(search.search(req, debug=body.debug, request_id=request_id))


class SearchQuery(QueryModel):
    q: Annotated[str, Field(max_length=500, description="Free text (Chinese or English).")] = ""
    user_id: OptionalUser = None
    category: CategoryPath = None
    brand: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    sort: SortMode = "relevance"
    page: Annotated[int, Field(ge=1, le=100)] = 1
    size: Annotated[int, Field(ge=1, le=100)] = 10
    debug: Debug = False


@router.get("", response_model=SearchOut, response_model_exclude_none=True, summary="Simple search")
def search_get(
    p: Annotated[SearchQuery, Query()], search: ProductSearchDep, request_id: RequestIdDep
) -> Response:
    filters = []
    cat = parse_category(p.category)
    if cat:
        filters.append(TermsFilter(field="category", values=(CATEGORY_SEPARATOR.join(cat),)))
    if p.brand:
        filters.append(TermsFilter(field="brand", values=(p.brand,)))
    req = SearchRequest(
        text=p.q, user_id=p.user_id, filters=tuple(filters), sort=p.sort, page=p.page, size=p.size,
        facets=("category_l1", "brand", "price"),
    )
    return json_response(search.search(req, debug=p.debug, request_id=request_id))


class AutocompleteQuery(QueryModel):
    q: Annotated[
        str, Field(min_length=1, max_length=100, description="What the shopper typed so far.")
    ]
    size: Annotated[int, Field(ge=1, le=20)] = 8


@router.get("/autocomplete", response_model=AutocompleteOut, summary="Autocomplete")
def autocomplete(
    p: Annotated[AutocompleteQuery, Query()], search: ProductSearchDep, request_id: RequestIdDep
) -> AutocompleteOut:
    return AutocompleteOut(
        request_id=request_id,
        prefix=p.q,
        suggestions=[
            SuggestionOut(text=s.text, kind=s.kind, count=s.count)
            for s in search.suggest(p.q, p.size)
        ],
    )

