"""Storefront GET routes read their query through one model (``serving.params.read_query``)
and document it with ``query_openapi``. Both must be what FastAPI itself does for
``Annotated[Model, Query()]``: the same OpenAPI parameters, the same values, the same 422s."""

# no ``from __future__ import annotations``: the test apps' signatures name a local model

import asyncio
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.params import QueryModel, query_openapi, read_query
from serving.routes.feed import FeedQuery
from serving.routes.items import ItemListQuery
from serving.routes.recommendations import RecommendationsQuery
from serving.routes.search import AutocompleteQuery, SearchQuery
from serving.routes.trending import TrendingQuery

MODELS: list[type[QueryModel]] = [
    RecommendationsQuery, FeedQuery, ItemListQuery, TrendingQuery, SearchQuery, AutocompleteQuery,
]


def _apps(model: type[QueryModel]) -> FastAPI:
    """``/fastapi`` declares the model FastAPI's way, ``/ours`` reads it with read_query."""
    app = FastAPI()

    @app.exception_handler(RequestValidationError)
    async def _422(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"locs": sorted(list(e["loc"]) for e in exc.errors())}, status_code=422)

    @app.get("/fastapi")
    async def theirs(q: Annotated[model, Query()]) -> dict[str, Any]:  # type: ignore[valid-type]
        return q.model_dump()  # type: ignore[no-any-return]

    @app.get("/ours", openapi_extra=query_openapi(model))
    async def ours(request: Request) -> dict[str, Any]:
        return read_query(model, request).model_dump()

    return app


def _call(app: FastAPI, path: str, qs: str) -> tuple[int, Any]:
    async def get() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            return await c.get(f"{path}?{qs}")

    r = asyncio.run(get())
    return r.status_code, r.json()


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_openapi_parameters_are_fastapis(model: type[QueryModel]) -> None:
    spec = _apps(model).openapi()["paths"]
    assert spec["/ours"]["get"]["parameters"] == spec["/fastapi"]["get"]["parameters"]
    assert len(spec["/ours"]["get"]["parameters"]) == len(model.model_fields)


QUERIES = [
    "",
    "n=5&user_id=u1",
    "n=0",
    "n=101",
    "n=abc",
    "n=",
    "n=3&n=7",
    "user_id=",
    "user_id=a%20b",
    "user_id=" + "x" * 129,
    "history=i1&history=i2,i3&exclude=i9",
    "history=",
    "exclude_purchased=false&debug=1",
    "debug=yes",
    "debug=maybe",
    "category=%E6%9C%8D%E8%A3%9D%20%3E%20%E5%A5%B3%E8%A3%9D",
    "category=",
    "page=2&size=50&request_id=abc.1",
    "request_id=bad%20id",
    "pagination_id=x",
    "page=0",
    "size=101",
    "q=%E9%80%A3%E8%A1%A3%E8%A3%99&sort=price_asc",
    "sort=cheapest",
    "brand=",
    "q=" + "x" * 501,
    "unknown=1&n=4",
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_values_and_errors_are_fastapis(model: type[QueryModel]) -> None:
    app = _apps(model)
    statuses = set()
    for qs in QUERIES:
        theirs = _call(app, "/fastapi", qs)
        ours = _call(app, "/ours", qs)
        assert ours == theirs, (model.__name__, qs)
        statuses.add(ours[0])
    assert statuses == {200, 422}


def test_a_bad_parameter_is_named_in_the_api_answer() -> None:
    from serving.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/r")
    async def r(request: Request) -> dict[str, Any]:
        return read_query(RecommendationsQuery, request).model_dump()

    status, body = _call(app, "/r", "n=500")
    assert status == 422
    assert body["field"] == "n" and body["message"].startswith("n: ")
