"""Every endpoint over real HTTP, with its error cases."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx

from tests.serving.conftest import ADMIN_KEY, Live


def _first_item(live: Live) -> str:
    return next(
        it.item_id
        for it in live.services.catalog
        if live.services.catalog.is_recommendable(it.item_id)
    )


def _assert_ranked(body: dict[str, object]) -> None:
    assert body["request_id"]
    items = body["items"]
    assert isinstance(items, list) and items
    for it in items:
        assert isinstance(it["score"], float)
        assert it["reasons"] and all(r["source"] for r in it["reasons"])


def test_ops(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"catalog": True, "models": True, "search": True}
    client.get("/v1/trending")
    metrics = client.get("/metrics").text
    assert 'shoprank_requests_total{method="GET",route="/v1/trending",status="200"}' in metrics
    assert "shoprank_request_duration_seconds_bucket" in metrics
    assert 'shoprank_model_info{name="als",version="v1"} 1.0' in metrics


def test_metrics_labels_stay_bounded_whatever_the_method(client: httpx.Client) -> None:
    # the HTTP parser accepts some thirty methods (WebDAV's among them): outside the usual
    # seven they share one label value
    for method in ("PROPFIND", "MKCOL", "PURGE"):
        client.request(method, "/v1/trending")
    metrics = client.get("/metrics").text
    assert "PROPFIND" not in metrics and "PURGE" not in metrics
    assert 'shoprank_requests_total{method="other",' in metrics


def test_request_id_header_and_body(client: httpx.Client) -> None:
    r = client.get("/v1/trending", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123" == r.json()["request_id"]
    r = client.get("/v1/trending")
    assert r.headers["x-request-id"] == r.json()["request_id"]
    # made ids: 32 hex digits, unique, in the order they were made (the request log's index
    # grows at its end); the first 12 digits are the time in milliseconds
    made = [client.get("/v1/trending").json()["request_id"] for _ in range(30)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in made)
    assert len(set(made)) == 30
    assert [i[:12] for i in made] == sorted(i[:12] for i in made)
    assert abs(int(made[-1][:12], 16) / 1000 - time.time()) < 60


def test_recommendations_known_user(client: httpx.Client, live: Live) -> None:
    user = next(
        u for u in ("u1", "u2", "u3", "u4") if live.services.models.get("als").knows_user(u)
    )  # type: ignore[union-attr]
    body = client.get("/v1/recommendations", params={"user_id": user, "n": 7, "debug": True}).json()
    _assert_ranked(body)
    assert body["strategy"] == "personalized" and len(body["items"]) == 7
    assert body["model_versions"]["als"] == "v1"
    assert any(
        r["source"] == "cf" and r["model_version"] == "v1"
        for it in body["items"]
        for r in it["reasons"]
    )
    assert all(it["breakdown"] for it in body["items"])
    plain = client.get("/v1/recommendations", params={"user_id": user, "n": 7}).json()
    assert all("breakdown" not in it for it in plain["items"])


def test_recommendations_category_filter(client: httpx.Client) -> None:
    body = client.get(
        "/v1/recommendations", params={"user_id": "u1", "n": 5, "category": "食品"}
    ).json()
    assert body["items"] and all(it["category"][0] == "食品" for it in body["items"])


def test_recommendations_anonymous_history_and_unknown(client: httpx.Client, live: Live) -> None:
    anchor = _first_item(live)
    body = client.get("/v1/recommendations", params={"history": anchor, "n": 5}).json()
    _assert_ranked(body)
    assert body["strategy"] == "history"
    assert any(r.get("related_item_id") == anchor for it in body["items"] for r in it["reasons"])
    assert anchor not in {it["item_id"] for it in body["items"]}
    cold = client.get("/v1/recommendations", params={"user_id": "never-seen-user", "n": 5}).json()
    assert cold["strategy"] == "trending" and len(cold["items"]) == 5


def test_exclude_purchased(client: httpx.Client, live: Live) -> None:
    user = "buyer-1"
    first = client.get("/v1/recommendations", params={"history": _first_item(live), "n": 3}).json()[
        "items"
    ][0]["item_id"]
    ev = {
        "event_id": "buy-1",
        "user_id": user,
        "item_id": first,
        "type": "purchase",
        "timestamp": "2026-10-01T00:00:00Z",
    }
    assert client.post("/v1/events", json={"events": [ev]}).json()["accepted"] == 1
    recs = client.get("/v1/recommendations", params={"user_id": user, "n": 20}).json()
    assert first not in {it["item_id"] for it in recs["items"]}
    kept = client.get(
        "/v1/recommendations", params={"user_id": user, "n": 20, "exclude_purchased": False}
    ).json()
    assert recs["items"] and kept["items"]


def test_feed_pagination_never_repeats(client: httpx.Client) -> None:
    p1 = client.get("/v1/feed", params={"user_id": "u3", "size": 10})
    rid = p1.json()["request_id"]
    assert p1.headers["x-request-id"] == rid
    seen = {it["item_id"] for it in p1.json()["items"]}
    for page in (2, 3):
        p = client.get(
            "/v1/feed", params={"user_id": "u3", "size": 10, "page": page, "request_id": rid}
        ).json()
        assert p["request_id"] == rid
        ids = {it["item_id"] for it in p["items"]}
        assert ids and not (ids & seen)
        seen |= ids


def test_feed_diversity_and_filters(client: httpx.Client, live: Live) -> None:
    body = client.get("/v1/feed", params={"user_id": "u5", "size": 50}).json()
    leaves = [" > ".join(it["category"]) for it in body["items"]]
    s = live.services.settings
    for start in range(len(leaves) - s.diversity_window + 1):
        window = leaves[start : start + s.diversity_window]
        assert max(window.count(x) for x in window) <= s.diversity_max_per_category
    assert all(live.services.catalog.is_recommendable(it["item_id"]) for it in body["items"])
    assert len({it["item_id"] for it in body["items"]}) == len(body["items"])


def test_similar_and_bought_together(client: httpx.Client, live: Live) -> None:
    anchor = _first_item(live)
    sim = client.get(f"/v1/items/{anchor}/similar", params={"n": 5}).json()
    _assert_ranked(sim)
    assert anchor not in {it["item_id"] for it in sim["items"]}
    assert all(
        r.get("related_item_id") == anchor
        for it in sim["items"]
        for r in it["reasons"]
        if r["source"] == "similar"
    )
    bt = client.get(f"/v1/items/{anchor}/bought-together", params={"n": 5})
    assert bt.status_code == 200 and bt.json()["strategy"] in ("bought_together", "none")
    missing = client.get("/v1/items/no-such-item/similar")
    assert missing.status_code == 404 and missing.json()["field"] == "item_id"


def test_trending_global_and_category(client: httpx.Client) -> None:
    body = client.get("/v1/trending", params={"n": 5}).json()
    _assert_ranked(body)
    cat = client.get("/v1/trending", params={"n": 5, "category": "服裝 > 女裝"}).json()
    assert cat["items"] and all(it["category"][:2] == ["服裝", "女裝"] for it in cat["items"])


def test_search_and_personalization_keep_totals(client: httpx.Client, live: Live) -> None:
    plain = client.post("/v1/search", json={"text": "dress", "size": 5, "facets": ["brand"]}).json()
    assert plain["total"] > 0 and plain["hits"] and not plain["personalized"]
    user = "u7"
    mine = client.post(
        "/v1/search", json={"text": "dress", "size": 5, "facets": ["brand"], "user_id": user}
    ).json()
    assert (
        mine["personalized"]
        and mine["total"] == plain["total"]
        and mine["facets"] == plain["facets"]
    )
    g = client.get("/v1/search", params={"q": "連衣裙", "size": 3}).json()
    assert g["hits"] and all("<em>" in h["highlighted_title"] for h in g["hits"])
    ac = client.get("/v1/search/autocomplete", params={"q": "連"}).json()
    assert any("連" in s["text"] for s in ac["suggestions"])


def test_validation_errors_name_the_field(client: httpx.Client) -> None:
    cases = [
        ("GET", "/v1/recommendations", {"params": {"n": 0}}, "n"),
        ("GET", "/v1/feed", {"params": {"size": "many"}}, "size"),
        ("GET", "/v1/feed", {"params": {"page": 100, "size": 100}}, "page"),
        ("POST", "/v1/search", {"json": {"text": "x", "facets": ["nope"]}}, "facets"),
        ("POST", "/v1/search", {"json": {"text": "x", "sort": "random"}}, "sort"),
        ("POST", "/v1/events", {"json": {"events": []}}, "events"),
        ("GET", "/v1/recommendations", {"params": {"history": "a b"}}, "history"),
    ]
    for method, path, kw, field in cases:
        r = client.request(method, path, **kw)  # type: ignore[arg-type]
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        body = r.json()
        assert body["field"].startswith(field), (path, body)
        assert field in body["message"]


def test_events_partial_batch_idempotent_and_durable(client: httpx.Client, live: Live) -> None:
    good = {"event_id": "ev-good-1", "user_id": "u9", "item_id": _first_item(live), "type": "click",
            "timestamp": "2026-10-02T10:00:00Z", "context": {"request_id": "r1", "surface": "feed"}}
    bad = {
        "event_id": "ev-bad-1",
        "user_id": "u9",
        "type": "view",
        "timestamp": "2026-10-02T10:00:00Z",
    }
    worse = {
        "event_id": "ev-bad-2",
        "user_id": "u9",
        "item_id": "i1",
        "type": "teleport",
        "timestamp": "x",
    }
    r = client.post("/v1/events", json={"events": [good, bad, worse]})
    assert r.status_code == 200
    body = r.json()
    assert body["accepted"] == 1 and [x["index"] for x in body["rejected"]] == [1, 2]
    assert "item_id" in body["rejected"][0]["reason"]
    assert body["rejected"][1]["field"] in ("type", "timestamp")
    again = client.post("/v1/events", json={"events": [good]}).json()
    assert again["accepted"] == 0 and again["duplicates"] == 1
    all_bad = client.post("/v1/events", json={"events": [bad]})
    assert all_bad.status_code == 400  # schema-valid, a rule broken (a view names its item)
    assert client.post("/v1/events", json={"events": [worse]}).status_code == 422  # schema
    # durable: the event is in the log on disk when the response arrives
    assert _in_log(live, "ev-good-1")


def _in_log(live: Live, event_id: str) -> bool:
    from data.eventlog import EventLog

    return any(e.event_id == event_id for e in EventLog(live.home / "events").iter_events())


def test_admin_key_required(live: Live) -> None:
    with (
        live.client() as anon,
        live.client("wrong-key-000000") as wrong,
        live.client(ADMIN_KEY) as admin,
    ):
        item = _first_item(live)
        assert anon.get(f"/v1/catalog/items/{item}").status_code == 401
        r = wrong.get(f"/v1/catalog/items/{item}")
        assert r.status_code == 403 and r.json()["field"] == "X-API-Key"
        assert admin.get(f"/v1/catalog/items/{item}").status_code == 200
        bearer = httpx.get(
            f"{live.url}/v1/catalog/items/{item}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert bearer.status_code == 200
        assert anon.put("/v1/users/x1", json={}).status_code == 401


def test_catalog_upsert_delete_and_inactive(
    admin: httpx.Client, client: httpx.Client, live: Live
) -> None:
    new = {
        "item_id": "new-dress-1",
        "title": "Test Zebra Dress 斑馬連衣裙",
        "category": ["服裝", "女裝", "連衣裙"],
        "brand": "ZebraCo",
        "price": 123.0,
        "stock": 5,
    }
    r = admin.put("/v1/catalog/items", json={"items": [new]})
    assert r.status_code == 200 and r.json()["indexed"] is True
    hits = client.get("/v1/search", params={"q": "Zebra"}).json()["hits"]
    assert [h["item_id"] for h in hits] == ["new-dress-1"]
    bad = admin.put("/v1/catalog/items", json={"items": [{**new, "price": -1}]})
    assert bad.status_code == 422 and bad.json()["field"] == "items.0.price"
    mismatch = admin.put("/v1/catalog/items/other-id", json=new)
    assert mismatch.status_code == 400 and mismatch.json()["field"] == "item_id"
    # inactive → never recommended
    admin.put("/v1/catalog/items/new-dress-1", json={**new, "is_active": False})
    assert not live.services.catalog.is_recommendable("new-dress-1")
    recs = client.get("/v1/recommendations", params={"history": "new-dress-1", "n": 50}).json()
    assert "new-dress-1" not in {it["item_id"] for it in recs["items"]}
    assert admin.delete("/v1/catalog/items/new-dress-1").json()["deleted"] is True
    assert admin.get("/v1/catalog/items/new-dress-1").status_code == 404
    assert client.get("/v1/search", params={"q": "Zebra"}).json()["total"] == 0
    assert admin.delete("/v1/catalog/items/new-dress-1").status_code == 404


def test_consent_and_erasure(admin: httpx.Client, client: httpx.Client, live: Live) -> None:
    user = "consent-user"
    item = _first_item(live)
    ev = {
        "event_id": "consent-ev-1",
        "user_id": user,
        "item_id": item,
        "type": "view",
        "timestamp": "2026-10-03T00:00:00Z",
    }
    assert client.post("/v1/events", json={"events": [ev]}).json()["accepted"] == 1
    assert (
        client.get("/v1/recommendations", params={"user_id": user}).json()["strategy"] == "history"
    )
    r = admin.put(f"/v1/users/{user}", json={"attributes": {"segment": "vip"}, "consent": False})
    assert r.status_code == 200 and r.json()["consent"] is False and r.json()["recent_items"] == []
    body = client.get("/v1/recommendations", params={"user_id": user}).json()
    assert body["strategy"] == "non_personalized"
    assert all(r["source"] not in ("cf", "history") for it in body["items"] for r in it["reasons"])
    assert client.get("/v1/feed", params={"user_id": user}).json()["strategy"] == "non_personalized"
    # erasure
    erased = admin.delete(f"/v1/users/{user}")
    assert erased.status_code == 200 and erased.json()["profile_erased"] is True
    assert erased.json()["events_erased"] >= 1
    assert admin.get(f"/v1/users/{user}").status_code == 404
    assert not _in_log(live, "consent-ev-1")
    users = live.services.stores.users
    assert user in users.erasures()  # training and every process leave them out from now on
    assert users.get(user) is None  # attributes gone


def test_search_says_how_it_relaxed_and_suggests(client: httpx.Client) -> None:
    # the synthetic shop's titles are Taiwan-written: 智慧手錶, 跑步鞋
    strict = client.get("/v1/search", params={"q": "智能手表"}).json()
    assert strict["total"] > 0 and strict["relaxed"] is False and "relaxation" not in strict
    assert all(h["category"][-1] == "智慧手錶" for h in strict["hits"])
    relaxed = client.get("/v1/search", params={"q": "Kiddo sneekers"}).json()
    assert relaxed["relaxed"] is True
    assert relaxed["relaxation"]["corrected"] == {"sneekers": "sneaker"}
    assert relaxed["suggestion"] == "kiddo sneaker"
    assert relaxed["hits"] and all("運動鞋" in h["category"] for h in relaxed["hits"][:5])
    priced = client.post("/v1/search", json={"text": "藍牙耳機 1000元以下", "size": 20}).json()
    assert priced["price_filter"] == {"lte": 1000.0}
    assert priced["hits"] and all(h["price"] <= 1000 for h in priced["hits"])


def test_search_report_links_searches_to_clicks(client: httpx.Client, admin: httpx.Client) -> None:
    query = f"連衣裙 {uuid.uuid4().hex[:6]}"  # a query of its own: other tests search too
    first = client.get("/v1/search", params={"q": query}).json()
    assert first["hits"], first
    nothing = client.get("/v1/search", params={"q": "qqzzxx"}).json()
    assert nothing["total"] == 0
    hit = first["hits"][1]
    sent = client.post("/v1/events", json={"events": [{
        "event_id": uuid.uuid4().hex, "user_id": "u1", "item_id": hit["item_id"], "type": "click",
        "timestamp": datetime.now(UTC).isoformat(),
        "context": {"request_id": first["request_id"], "position": 1}}]})
    assert sent.status_code in (200, 202), sent.text
    report = admin.get("/v1/reports/search", params={"limit": 500, "min_searches": 1}).json()
    rows = {q["query"]: q for q in report["top_queries"]}
    mine = rows[query.replace("連衣裙", "连衣裙")]
    assert (mine["searches"], mine["clicks"], mine["avg_click_position"]) == (1, 1, 2.0)
    assert "qqzzxx" in {q["query"] for q in report["no_result_queries"]}
    assert client.get("/v1/reports/search").status_code == 401  # admin key required
    bad = admin.get("/v1/reports/search", params={"start": "2026-12-02", "end": "2026-12-01"})
    assert bad.status_code == 400 and bad.json()["field"] == "end"
