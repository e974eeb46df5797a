"""Storefront GET routes declare their query as one model (``Annotated[Model, Query()]``):
OpenAPI lists each field as a query parameter, repeated and comma-separated ids are read, and a
bad value is a 422 naming the parameter, in the service's error body."""

from __future__ import annotations

import httpx
import pytest

from serving.params import QueryModel
from serving.routes.feed import FeedQuery
from serving.routes.items import ItemListQuery
from serving.routes.recommendations import RecommendationsQuery
from serving.routes.search import AutocompleteQuery, SearchQuery
from serving.routes.trending import TrendingQuery
from tests.serving.conftest import Live

ROUTES: list[tuple[str, type[QueryModel]]] = [
    ("/v1/recommendations", RecommendationsQuery),
    ("/v1/feed", FeedQuery),
    ("/v1/items/{item_id}/similar", ItemListQuery),
    ("/v1/trending", TrendingQuery),
    ("/v1/search", SearchQuery),
    ("/v1/search/autocomplete", AutocompleteQuery),
]


@pytest.mark.parametrize("path, model", ROUTES, ids=[p for p, _ in ROUTES])
def test_openapi_lists_the_model_fields(client: httpx.Client, path: str,
                                        model: type[QueryModel]) -> None:
    op = client.get("/openapi.json").json()["paths"][path]["get"]
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    assert set(params) == set(fields)
    for name, f in fields.items():
        assert params[name]["required"] == f.is_required(), name


def test_repeated_and_comma_separated_ids_are_read(live: Live, client: httpx.Client) -> None:
    cat = live.services.catalog
    a, b, c = [i for i in cat.ids() if cat.is_recommendable(i)][:3]
    r = client.get(f"/v1/recommendations?history={a}&history={b},{c}&exclude={a}&n=50")
    assert r.status_code == 200, r.text
    shown = {it["item_id"] for it in r.json()["items"]}
    assert a not in shown and shown
    assert client.get("/v1/recommendations?unknown=1&n=3").status_code == 200  # ignored


@pytest.mark.parametrize("query, field", [
    ("n=500", "n"), ("n=abc", "n"), ("user_id=a%20b", "user_id"), ("debug=maybe", "debug"),
    ("user_id=" + "x" * 129, "user_id"),
])
def test_a_bad_parameter_is_named_in_the_answer(client: httpx.Client, query: str,
                                                field: str) -> None:
    r = client.get(f"/v1/recommendations?{query}")
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error" and body["field"] == field
    assert body["message"].startswith(f"{field}: ") and body["request_id"]


def test_feed_request_id_parameter_is_the_pagination_id(client: httpx.Client) -> None:
    r = client.get("/v1/feed?user_id=u4&size=6")
    assert r.status_code == 200
    rid = r.json()["request_id"]
    r2 = client.get(f"/v1/feed?user_id=u4&size=6&page=2&request_id={rid}")
    assert r2.status_code == 200 and r2.json()["request_id"] == rid
    page1 = {it["item_id"] for it in r.json()["items"]}
    assert page1.isdisjoint(it["item_id"] for it in r2.json()["items"])
    assert client.get("/v1/feed?request_id=bad%20id").json()["field"] == "request_id"
