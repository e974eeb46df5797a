"""Merchandising over HTTP on a live server: rules, previews, experiments, reports."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from serving.deps import get_request_log
from tests.console.conftest import MerchLive, save_json, simulate_feed_traffic


def _search(live: MerchLive, q: str, **params: object) -> dict:
    with live.storefront() as http:
        r = http.get("/v1/search", params={"q": q, "size": 10, **params})
        assert r.status_code == 200, r.text
        return r.json()


def _consenting_users(live: MerchLive) -> list[str]:
    rows = [
        json.loads(x) for x in (live.home / "data" / "users.jsonl").read_text().splitlines() if x
    ]
    return [u["user_id"] for u in rows if u.get("consent", True) and u["user_id"] in live.tastes]


def test_admin_key_is_required(merch_live: MerchLive) -> None:
    with merch_live.storefront() as http:
        r = http.get("/v1/rules")
        assert r.status_code == 401 and "X-API-Key" in r.json()["message"]
        r = http.get("/v1/experiments", headers={"X-API-Key": "wrong-key-123456"})
        assert r.status_code == 403


def test_bad_rules_are_rejected_with_reasons(merch_live: MerchLive) -> None:
    now = datetime.now(UTC)
    with merch_live.admin() as admin:
        r = admin.post(
            "/v1/rules",
            json={
                "name": "bad",
                "start": now.isoformat(),
                "end": (now - timedelta(days=1)).isoformat(),
                "condition": {"contexts": ["search"], "query": {"text": "帳篷"}},
                "actions": [{"type": "pin", "pins": [{"item_id": "no-such-item", "position": 1}]}],
            },
        )
        assert r.status_code == 400
        msg = r.json()["message"]
        assert "unknown item 'no-such-item'" in msg and "window ends" in msg
        r = admin.post(
            "/v1/rules",
            json={"name": "typo", "actions": [{"type": "pin", "pins": [{"item": "i1"}]}]},
        )
        assert r.status_code == 422 and "actions" in r.json()["field"]
        assert admin.get("/v1/rules/nope").status_code == 404


def test_pin_for_a_query_shows_first_in_public_search(merch_live: MerchLive) -> None:
    q = "帳篷"
    before = _search(merch_live, q)
    assert before["total"] > 3
    target = before["hits"][3]["item_id"]  # a product found by search, not first today
    rule = {
        "id": "pin-tent",
        "name": "Pin our tent for 帳篷",
        "priority": 5,
        "condition": {"contexts": ["search"], "query": {"text": "帐篷", "match": "contains"}},
        "actions": [{"type": "pin", "pins": [{"item_id": target, "position": 1}]}],
    }
    with merch_live.admin() as admin:
        p = admin.post("/v1/rules/preview", json={"rule": rule, "sample_size": 0})
        assert p.status_code == 200, p.text
        prev = p.json()
        assert prev["valid"] and prev["preview"]["query"] == "帐篷"
        assert prev["preview"]["after"][0]["item_id"] == target
        assert prev["preview"]["before"][0]["item_id"] != target
        r = admin.post("/v1/rules", json=rule)
        assert r.status_code == 201, r.text
        assert r.headers["location"] == "/v1/rules/pin-tent"
        assert admin.post("/v1/rules", json=rule).status_code == 409
    after = _search(merch_live, "帳篷")  # traditional query, rule written in simplified
    assert after["hits"][0]["item_id"] == target
    assert {"source": "rule", "rule_id": "pin-tent", "detail": "pinned at 1"}.items() <= after[
        "hits"
    ][0]["reasons"][-1].items()
    other = _search(merch_live, "lipstick")
    assert all(h["item_id"] != target for h in other["hits"][:1])


def test_bury_a_brand_in_the_feed_for_a_week_with_preview_and_impact(merch_live: MerchLive) -> None:
    user = _consenting_users(merch_live)[0]
    simulate_feed_traffic(
        merch_live, _consenting_users(merch_live)[1:9], requests_per_user=1
    )  # traffic to sample
    with merch_live.storefront() as http:
        feed = http.get("/v1/feed", params={"user_id": user, "size": 20}).json()["items"]
    brand = feed[0]["brand"]
    now = datetime.now(UTC)
    rule = {
        "id": "bury-brand",
        "name": f"Bury {brand} in the feed for a week",
        "start": now.isoformat(),
        "end": (now + timedelta(days=7)).isoformat(),
        "condition": {"contexts": ["feed"]},
        "actions": [{"type": "bury", "filter": {"brands": [brand]}, "weight": 1.0}],
    }
    with merch_live.admin() as admin:
        p = admin.post(
            "/v1/rules/preview", json={"rule": rule, "user_id": user, "k": 10, "sample_size": 8}
        )
        assert p.status_code == 200, p.text
        prev = p.json()
        save_json("preview-bury.json", prev)
        assert prev["preview"]["surface"] == "feed" and prev["preview"]["changed"]
        assert prev["preview"]["before"][0]["brand"] == brand
        assert prev["preview"]["after"][0]["brand"] != brand
        moved = {m["item_id"]: m for m in prev["preview"]["moves"]}
        assert moved[feed[0]["item_id"]]["kind"] in ("down", "left")
        impact = prev["impact"]
        assert impact["sampled"] == 8 and impact["fired"] == 8 and 0 < impact["changed"] <= 8
        assert impact["items"] and "would change" in impact["summary"]
        r = admin.post("/v1/rules", json=rule)
        assert r.status_code == 201 and r.json()["active_now"]
    with merch_live.storefront() as http:
        items = http.get("/v1/feed", params={"user_id": user, "size": 20}).json()["items"]
    assert items[0]["brand"] != brand
    buried = [it for it in items if it["brand"] == brand]
    assert all(any(r.get("rule_id") == "bury-brand" for r in it["reasons"]) for it in buried)


def test_ab_test_of_two_blend_weightings_finds_the_better_one(merch_live: MerchLive) -> None:
    exp = {
        "id": "api-blend",
        "name": "For-you vs trending-heavy feed",
        "surfaces": ["feed"],
        "variants": [
            {
                "name": "trending",
                "share": 50,
                "overrides": {
                    "blend_weights": {"for_you": 0.0, "trending": 1.0, "new_arrivals": 0.5}
                },
            },
            {
                "name": "for-you",
                "share": 50,
                "overrides": {
                    "blend_weights": {"for_you": 1.0, "trending": 0.1, "new_arrivals": 0.05}
                },
            },
        ],
    }
    with merch_live.admin() as admin:
        assert admin.post("/v1/experiments", json=exp).status_code == 201
        assert admin.post("/v1/experiments/api-blend/start").json()["status"] == "running"
        users = _consenting_users(merch_live)
        with merch_live.storefront() as http:
            body = http.get("/v1/feed", params={"user_id": users[0]}).json()
        assert body["experiment"] == "api-blend" and body["variant"] in ("trending", "for-you")
        counts = simulate_feed_traffic(merch_live, users[:120], requests_per_user=2, seed=3)
        res = admin.get("/v1/experiments/api-blend/results", params={"metric": "ctr"}).json()
        save_json("experiment-results.json", res)
        by = {v["label"]: v for v in res["by_variant"]}
        assert sum(v["impressions"] for v in by.values()) == counts["impressions"]
        assert res["attribution"]["request_id"] > 0 and res["attribution"]["context"] == 0
        assert res["winner"] == "for-you", res["verdict"]
        ctr = next(c for c in res["comparisons"] if c["metric"] == "ctr")
        assert ctr["significant"] and ctr["lift"] > 0 and "significant" in res["verdict"]
        kpis = admin.get("/v1/reports/kpis", params={"experiment": "api-blend"}).json()
        assert kpis["winner"] == "for-you" and kpis["by_surface"][0]["label"] == "feed"
        png = admin.get("/v1/reports/kpis.png", params={"experiment": "api-blend"})
        assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
        assert admin.get("/v1/reports/kpis", params={"metric": "nope"}).status_code == 422
        assert admin.post("/v1/experiments/api-blend/stop").json()["status"] == "stopped"
        with merch_live.storefront() as http:
            assert "experiment" not in http.get("/v1/feed", params={"user_id": users[0]}).json()


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "x", "variants": [{"name": "A", "share": 1}]},
        {"name": "x", "variants": [{"name": "A", "share": -1}, {"name": "B", "share": 1}]},
    ],
)
def test_bad_experiments_are_422(merch_live: MerchLive, bad: dict) -> None:
    with merch_live.admin() as admin:
        r = admin.post("/v1/experiments", json=bad)
        assert r.status_code == 422 and r.json()["field"].startswith("variants")
        assert admin.post(f"/v1/experiments/{uuid.uuid4().hex[:8]}/start").status_code == 404


def test_anonymous_click_is_attributed_to_its_surface_by_request_id(merch_live: MerchLive) -> None:
    """An anonymous visitor's list is in the request log too: its events carry only the
    request_id (no surface, no user the API knows), and the report still finds the surface."""
    at = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    with merch_live.storefront() as http:
        search = http.get("/v1/search", params={"q": "帳篷", "size": 5}).json()
        feed = http.get("/v1/feed", params={"size": 5}).json()
        assert "experiment" not in feed and search["hits"] and feed["items"]
        events = []
        for n, (rid, item) in enumerate(
            [
                (search["request_id"], search["hits"][0]["item_id"]),
                (feed["request_id"], feed["items"][0]["item_id"]),
                (feed["request_id"], feed["items"][1]["item_id"]),
            ]
        ):
            for type_ in ("impression", "click"):
                events.append(
                    {
                        "event_id": f"anon-{uuid.uuid4().hex}",
                        "user_id": f"visitor-{n}",
                        "item_id": item,
                        "type": type_,
                        "timestamp": at.isoformat(),
                        "context": {"request_id": rid},
                    }
                )
        r = http.post("/v1/events", json={"events": events})
        assert r.status_code == 200, r.text
    window = {"start": at.isoformat(), "end": (at + timedelta(seconds=1)).isoformat()}
    with merch_live.admin() as admin:
        rep = admin.get("/v1/reports/kpis", params=window).json()
    by = {s["label"]: s for s in rep["by_surface"]}
    assert rep["events"] == 6 and set(by) == {"feed", "search"}
    assert (by["feed"]["clicks"], by["feed"]["users"]) == (2, 2)
    assert (by["search"]["clicks"], by["search"]["impressions"]) == (1, 1)
    served = get_request_log(merch_live.services).lookup([feed["request_id"]])
    s = served[feed["request_id"]]
    assert (s.surface, s.user_id, s.experiment, s.variant) == ("feed", None, None, None)


def test_console_forms_refuse_a_post_without_the_session_csrf_token(merch_live: MerchLive) -> None:
    import re

    import httpx

    from tests.console.conftest import ADMIN_KEY

    with httpx.Client(base_url=merch_live.url, timeout=60.0) as browser:
        r = browser.post("/console/login", data={"key": ADMIN_KEY})
        assert r.status_code == 303 and {"shoprank_console", "shoprank_console_session"} <= set(
            browser.cookies.keys()
        )
        html = browser.get("/console/experiments").text
        tokens = set(re.findall(r'name="csrf_token" value="([0-9a-f]{64})"', html))
        assert len(tokens) == 1, "every form of the page carries the session's token"
        token = tokens.pop()
        form = {"id": "csrf-probe", "name": "probe", "a_name": "A", "b_name": "B"}
        for sent in ({}, {"csrf_token": ""}, {"csrf_token": "0" * 64}):
            r = browser.post("/console/experiments", data={**form, **sent})
            assert r.status_code == 403, r.text
            assert r.json()["message"].startswith("csrf_token: missing or wrong CSRF token")
        r = browser.post("/console/rules/x/delete")  # a form without a body at all
        assert r.status_code == 403
        with merch_live.admin() as admin:
            assert admin.get("/v1/experiments/csrf-probe").status_code == 404  # nothing changed
        r = browser.post("/console/experiments", data={**form, "csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/console/experiments/csrf-probe"
    with httpx.Client(base_url=merch_live.url, timeout=60.0) as other:  # another session
        other.post("/console/login", data={"key": ADMIN_KEY})
        r = other.post("/console/experiments/csrf-probe/start", data={"csrf_token": token})
        assert r.status_code == 403  # a token is only good for the session it was made for
        with merch_live.admin() as admin:
            assert admin.get("/v1/experiments/csrf-probe").json()["status"] == "draft"
            assert admin.delete("/v1/experiments/csrf-probe").status_code == 204


def test_preview_after_list_is_what_the_live_api_returns_once_saved(merch_live: MerchLive) -> None:
    """Previews run serving's own code path: on the feed the rules come before diversity (a
    strong category boost is still spread out), search is personalized for the user, and the
    draft's "after" list is exactly what the public API returns once the rule is saved."""
    from ranking.diversity import max_in_any_window

    s = merch_live.services.settings
    user = _consenting_users(merch_live)[2]
    with merch_live.storefront() as http:
        feed = http.get("/v1/feed", params={"user_id": user, "size": 40}).json()["items"]
    leaf = feed[-1]["category"]  # a category the feed ranks low today
    boost = {
        "id": "parity-feed",
        "name": "Push one category up the feed",
        "condition": {"contexts": ["feed"]},
        "actions": [{"type": "boost", "filter": {"categories": [leaf]}, "weight": 5.0}],
    }
    search_rule = {
        "id": "parity-search",
        "name": "Bury a brand for 帳篷",
        "condition": {"contexts": ["search"], "query": {"text": "帳篷", "match": "contains"}},
        "actions": [{"type": "bury", "filter": {"brands": ["__none__"]}, "weight": 1.0}],
    }
    first = _search(merch_live, "帳篷", user_id=user)["hits"]
    search_rule["actions"][0]["filter"]["brands"] = [first[1]["brand"]]

    def live_feed() -> list[str]:
        with merch_live.storefront() as http:
            r = http.get("/v1/feed", params={"user_id": user, "size": 10})
            return [it["item_id"] for it in r.json()["items"]]

    def live_search() -> list[str]:
        return [h["item_id"] for h in _search(merch_live, "帳篷", user_id=user)["hits"]]

    with merch_live.admin() as admin:
        for rule, live in ((boost, live_feed), (search_rule, live_search)):
            p = admin.post(
                "/v1/rules/preview",
                json={"rule": rule, "user_id": user, "k": 10, "sample_size": 0},
            )
            assert p.status_code == 200, p.text
            prev = p.json()["preview"]
            assert [it["item_id"] for it in prev["before"]] == live()
            assert prev["changed"] and prev["draft_fired"]
            assert admin.post("/v1/rules", json=rule).status_code == 201
            try:
                assert [it["item_id"] for it in prev["after"]] == live()
            finally:
                assert admin.delete(f"/v1/rules/{rule['id']}").status_code == 204
            if rule is boost:
                groups = [
                    " > ".join(merch_live.services.catalog.get(it["item_id"]).category)
                    for it in prev["after"]
                ]
                boosted = [g for g in groups if g == " > ".join(leaf)]
                assert len(boosted) >= s.diversity_max_per_category  # the boost worked...
                assert max_in_any_window(groups, s.diversity_window) <= (
                    s.diversity_max_per_category
                )  # ...and diversity still ran after it
