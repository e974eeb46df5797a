"""Ranked-list answers are written by hand (``serving.render.ranked_response``): each must
still be exactly what its pydantic response model (extra fields forbidden) accepts."""

from __future__ import annotations

import httpx
import pytest
from pydantic import BaseModel

from serving.schemas import FeedOut, ItemListOut, RecommendationsOut, TrendingOut
from tests.serving.conftest import Live


def _item(live: Live) -> str:
    return next(
        it.item_id
        for it in live.services.catalog
        if live.services.catalog.is_recommendable(it.item_id)
    )


@pytest.mark.parametrize("debug", [False, True])
def test_ranked_answers_match_their_models(live: Live, client: httpx.Client, debug: bool) -> None:
    item = _item(live)
    user = live.services.profiles.ids()[0]
    calls: list[tuple[str, dict[str, object], type[BaseModel]]] = [
        ("/v1/recommendations", {"user_id": user}, RecommendationsOut),
        ("/v1/recommendations", {"history": item}, RecommendationsOut),
        ("/v1/feed", {"user_id": user}, FeedOut),
        ("/v1/trending", {}, TrendingOut),
        (
            "/v1/trending",
            {"category": " > ".join(live.services.catalog.get(item).category[:1])},
            TrendingOut,
        ),
        (f"/v1/items/{item}/similar", {}, ItemListOut),
        (f"/v1/items/{item}/bought-together", {}, ItemListOut),
    ]
    for path, params, model in calls:
        r = client.get(path, params={**params, "debug": str(debug).lower()})
        assert r.status_code == 200, (path, r.text[:200])
        body = r.json()
        parsed = model.model_validate(body)
        assert parsed.model_dump(mode="json", exclude_none=True) == body, path
        for it in body["items"]:
            assert ("breakdown" in it) == debug, path
            assert it["reasons"] and all(rs["source"] for rs in it["reasons"])
            want = live.services.catalog.get(it["item_id"])
            assert want is not None
            assert (
                it["title"],
                it.get("brand"),
                it["category"],
                it["price"],
                it["currency"],
                it["in_stock"],
            ) == (
                want.title,
                want.brand,
                list(want.category),
                want.price,
                want.currency,
                want.stock > 0,
            )


def test_search_answers_build_no_catalog_items(
    live: Live, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a hit carries what the answer shows: searches must not build catalog items (each built
    # item stays in the catalog's cache: it grew a worker's memory through a soak)
    catalog = live.services.catalog
    built: list[str] = []
    get = catalog.get
    monkeypatch.setattr(catalog, "get", lambda item_id: built.append(item_id) or get(item_id))
    titles = {}
    for q in ("dress", "連衣裙", "phone", "咖啡"):
        r = client.get("/v1/search", params={"q": q, "size": 20})
        assert r.status_code == 200, r.text
        for h in r.json()["hits"]:
            titles[h["item_id"]] = h["title"]
    assert titles  # the shop answers these queries
    assert built == []
    monkeypatch.undo()
    for item_id, title in titles.items():  # the same fields as the catalog's item
        item = catalog.get(item_id)
        assert item is not None and item.title == title
