"""The merchandiser's console in a real headless Chromium (Debian's /usr/bin/chromium).

The "Done when" scenario of issue 6, from the console alone: log in with the key, find a
product, pin it for a query and see it first in the console's search and through the public
search API, bury a brand in the feed for a week with a preview of both, start an A/B test of
two blend weightings, let simulated shoppers (who truly prefer one variant) send events, and
read the result page: a chart, and the better variant called significant.
Screenshots of every page go to test-artifacts/console/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.conftest import ADMIN_KEY, ARTIFACTS, MerchLive, simulate_feed_traffic

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), (
        "Debian's chromium is missing: `./dev test` installs it (apt-get install chromium)"
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, merch_live: MerchLive):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-TW")
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


def shot(pg, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(pg, live: MerchLive) -> None:  # type: ignore[no-untyped-def]
    pg.goto(f"{live.url}/console/search")
    assert pg.url.endswith("/console/login")
    pg.fill("input[name=key]", ADMIN_KEY)
    pg.click("#login button[type=submit]")
    pg.wait_for_url("**/console/overview")  # the console opens on its dashboard
    pg.goto(f"{live.url}/console/search")


def save(pg, rule_id: str) -> None:  # type: ignore[no-untyped-def]
    with pg.expect_navigation():
        pg.click("#save-button")
    assert pg.url.endswith(f"/console/rules?saved={rule_id}"), pg.inner_text("main")[:600]


def _consenting(live: MerchLive) -> list[str]:
    rows = [
        json.loads(x) for x in (live.home / "data" / "users.jsonl").read_text().splitlines() if x
    ]
    return [u["user_id"] for u in rows if u.get("consent", True) and u["user_id"] in live.tastes]


def test_login_rejects_a_wrong_key_and_keeps_the_key_in_an_httponly_cookie(
    page, merch_live: MerchLive
) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{merch_live.url}/console/rules")
    assert page.url.endswith("/console/login")
    shot(page, "01-login")
    page.fill("input[name=key]", "not-the-key-at-all")
    page.click("#login button[type=submit]")
    assert "not the admin key" in page.inner_text("[role=alert]")
    login(page, merch_live)
    cookie = next(c for c in page.context.cookies() if c["name"] == "shoprank_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # invisible to scripts


def test_merchandiser_scenario_from_the_console_alone(page, merch_live: MerchLive) -> None:  # type: ignore[no-untyped-def]
    live = merch_live
    login(page, live)

    # 1. find a product (a Chinese query), pin it first for that query, with the live preview
    page.fill("input[name=q]", "口紅")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#results li.item")
    shot(page, "02-search")
    items = page.locator("#results li.item")
    assert items.count() >= 4
    target = items.nth(3).get_attribute("data-item-id")
    title = items.nth(3).locator(".title").inner_text()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in title)  # Chinese product text came through
    items.nth(3).get_by_role("link", name="Pin for “口紅”").click()
    page.wait_for_url("**/console/rules/new**")
    page.fill("input[name=id]", "pin-lipstick")
    page.wait_for_selector(f"#preview-after li:first-child[data-item-id='{target}']")
    assert page.locator("#preview-before li").first.get_attribute("data-item-id") != target
    assert "the rule fires" in page.inner_text("#preview-summary")
    shot(page, "03-rule-pin-preview")
    save(page, "pin-lipstick")
    assert page.locator("tr[data-rule-id='pin-lipstick'] .live").count() == 1

    # ... and see it first in the console's search and through the public search API
    page.goto(f"{live.url}/console/search?q=口紅")
    first = page.locator("#results li.item").first
    assert first.get_attribute("data-item-id") == target
    assert "rule: pin-lipstick" in first.locator(".reasons").inner_text()
    shot(page, "04-search-pinned")
    with live.storefront() as http:
        hits = http.get("/v1/search", params={"q": "口红"}).json()["hits"]  # simplified spelling
    assert hits[0]["item_id"] == target

    # 2. bury a brand in the feed for a week, previewing it for a shopper and recent traffic
    simulate_feed_traffic(live, _consenting(live)[130:150], requests_per_user=1, seed=4)
    user = _consenting(live)[5]
    page.goto(f"{live.url}/console/search?surface=feed&user_id={user}")
    page.wait_for_selector("#results li.item")
    brand = page.locator("#results li.item").first.locator(".meta").inner_text().split(" · ")[1]
    page.locator("#results li.item").first.get_by_role("link", name=f"Bury {brand} in feed").click()
    page.wait_for_url("**/console/rules/new**")
    assert page.input_value("input[name=duration_days]") == "7"
    page.fill("input[name=id]", "bury-week")
    page.fill("input[name=preview_user]", user)
    page.wait_for_function(
        "() => { const s = document.querySelector('#preview-summary');"
        f" return s && s.textContent.includes('for {user}')"
        " && s.textContent.includes('the rule fires'); }"
    )
    after_first = page.locator("#preview-after li").first.inner_text()
    assert (
        brand in page.locator("#preview-before li").first.inner_text() and brand not in after_first
    )
    assert page.locator("#preview-after li.down, #preview-after li.entered").count() > 0
    page.wait_for_selector("#impact-summary")
    assert "would change" in page.inner_text("#impact-summary")
    shot(page, "05-rule-bury-preview")
    save(page, "bury-week")
    row = page.locator("tr[data-rule-id='bury-week']")
    assert "bury" in row.inner_text() and row.locator(".live").count() == 1
    shot(page, "06-rules")

    # 3. start an A/B test of two blend weightings
    page.goto(f"{live.url}/console/experiments")
    page.fill("input[name=id]", "console-blend")
    page.fill("input[name=name]", "For-you heavy vs trending heavy feed")
    page.fill("input[name=a_name]", "trending")
    page.fill("input[name=a_weights]", "for_you=0, trending=1, new_arrivals=0.5")
    page.fill("input[name=b_name]", "for-you")
    page.fill("input[name=b_weights]", "for_you=1, trending=0.1, new_arrivals=0.05")
    shot(page, "07-experiment-form")
    page.click("#create-experiment")
    page.wait_for_url("**/console/experiments/console-blend")
    assert "running" in page.inner_text("h1")
    assert page.locator("#chart-empty").count() == 1
    shot(page, "08-experiment-started")

    # shoppers arrive: the storefront echoes request_id only; for-you truly matches tastes
    counts = simulate_feed_traffic(live, _consenting(live)[:120], requests_per_user=2, seed=9)
    assert counts["impressions"] > 1000

    # 4. read the result: a chart, and the better variant called significant
    page.reload()
    page.wait_for_selector("#chart svg")
    verdict = page.inner_text("#verdict")
    assert "Winner: for-you" in verdict and "significant" in verdict and "not yet" not in verdict
    assert page.locator("#comparisons-table tr.significant").count() >= 1
    shot(page, "09-experiment-results")
    page.click("#stop-experiment")
    page.wait_for_url("**/console/experiments/console-blend")
    assert "stopped" in page.inner_text("h1")


def test_models_page_promotes_and_rolls_back(page, merch_live: MerchLive) -> None:  # type: ignore[no-untyped-def]
    from models.registry import Registry

    live = merch_live
    reg = Registry(live.services.settings.models_dir)
    popularity = live.services.models.get("popularity")
    assert popularity is not None
    v1 = reg.register(
        "popularity", popularity.model, metrics={"ndcg@10": 0.101}, version="20260101-000000"
    )
    v2 = reg.register(
        "popularity", popularity.model, metrics={"ndcg@10": 0.123}, version="20260102-000000"
    )
    reg.promote("popularity", v1)
    saved = live.services.models
    try:
        login(page, live)
        page.goto(f"{live.url}/console/models")
        card = page.locator("section[data-model='popularity']")
        assert (
            "ndcg@10 0.1230" in card.inner_text()
            and "current" in card.locator("tr.current").inner_text()
        )
        shot(page, "10-models")
        with page.expect_navigation():
            card.locator("tr", has_text=v2).get_by_role("button", name="Promote").click()
        assert f"popularity now at {v2}" in page.inner_text("[role=status]")
        assert reg.current_version("popularity") == v2
        assert live.services.models.versions.get("popularity") == v2  # serving it now
        with page.expect_navigation():
            page.locator("section[data-model='popularity']").get_by_role(
                "button", name="Roll back"
            ).click()
        assert f"popularity now at {v1}" in page.inner_text("[role=status]")
        assert reg.current_version("popularity") == v1
    finally:
        live.services.models = saved  # the other tests keep the in-memory models


def test_overview_and_search_analytics_show_failing_and_clicked_queries(
    page, merch_live: MerchLive
) -> None:  # type: ignore[no-untyped-def]
    import uuid
    from datetime import UTC, datetime

    live = merch_live
    with live.storefront() as api:
        failing = api.get("/v1/search", params={"q": "qqzzxx"}).json()
        assert failing["total"] == 0
        found = api.get("/v1/search", params={"q": "手提電腦"}).json()  # HK word, TW titles
        assert found["hits"] and found["relaxed"] is False
        clicked = found["hits"][2]["item_id"]
        r = api.post(
            "/v1/events",
            json={
                "events": [
                    {
                        "event_id": uuid.uuid4().hex,
                        "user_id": "console-shopper",
                        "item_id": clicked,
                        "type": "click",
                        "timestamp": datetime.now(UTC).isoformat(),
                        "context": {"request_id": found["request_id"]},
                    }
                ]
            },
        )
        assert r.status_code in (200, 202), r.text
    login(page, live)
    page.goto(f"{live.url}/console/overview")
    assert [r.inner_text() for r in page.locator("#kpis tbody th").all()] == [
        "today",
        "last 30 days",
    ]
    assert "qqzzxx" in page.inner_text("#failing-searches")
    assert "手提电脑" in page.inner_text("#top-searches")
    models = page.locator("#serving-models tbody tr")
    assert models.count() == len(live.services.models.versions) > 0
    shot(page, "11-overview")
    page.click("nav >> text=Search analytics")
    page.wait_for_url("**/console/search-analytics")
    assert page.locator("#search-charts svg").count() == 3
    row = page.locator("#top-queries tr", has_text="手提电脑")
    cells = [c.inner_text() for c in row.locator("td").all()]
    assert cells[4] != "0.0 %" and cells[5] == "3.0"  # clicked: the third hit
    assert "qqzzxx" in page.inner_text("#no-result-queries")
    shot(page, "12-search-analytics")
    # the search page says when and how a query was relaxed, and offers the spelling
    page.goto(f"{live.url}/console/search?q=Kiddo+sneekers")
    page.wait_for_selector("#results li.item")
    note = page.inner_text("#relaxed")
    assert "spelling" in note and "sneekers" in note and "sneaker" in note
    assert page.inner_text("#did-you-mean a") == "kiddo sneaker"
    assert "運動鞋" in page.locator("#results li.item .meta").first.inner_text()
    shot(page, "13-search-relaxed")
