"""The feed follows a user's hidden taste, and moves with what they view right now."""

from __future__ import annotations

from collections import Counter

import httpx

from data.catalog import Catalog
from tests.serving import shop
from tests.serving.conftest import Live


def _leaf(item: dict[str, object]) -> str:
    return " > ".join(item["category"])  # type: ignore[arg-type]


def _single_taste_user(live: Live) -> tuple[str, str]:
    """The most active consenting user with exactly one hidden taste leaf."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tastes = shop.tastes(live.home / "data")
    users = pq.read_table(live.home / "data" / "events.parquet", columns=["user_id"])["user_id"]
    counts = {r["values"]: r["counts"] for r in pc.value_counts(users).to_pylist()}
    candidates = [
        u
        for u, leaves in tastes.items()
        if len(leaves) == 1 and live.services.profiles.get(u).consent
    ]
    assert candidates, "the test shop has no single-taste user"
    best = max(candidates, key=lambda u: (counts.get(u, 0), u))
    return best, tastes[best][0]


def test_feed_follows_hidden_taste_then_fresh_views(live: Live, client: httpx.Client) -> None:
    user_id, taste = _single_taste_user(live)
    catalog: Catalog = live.services.catalog
    top = taste.split(" > ")[0]

    feed = client.get("/v1/feed", params={"user_id": user_id, "size": 20}).json()
    assert feed["strategy"] == "personalized"
    tops = Counter(item["category"][0] for item in feed["items"])
    share_c = tops[top] / len(feed["items"])
    catalog_share = sum(1 for it in catalog if it.category[0] == top) / len(catalog)
    # C leads the feed by far, though diversity keeps other categories in every window
    assert tops.most_common(1)[0][0] == top, (taste, tops)
    assert share_c >= 0.4, (taste, tops)
    assert share_c > 3 * catalog_share, (share_c, catalog_share)

    # views of items in another top-level category D
    other = sorted({it.category[0] for it in catalog} - {top})[0]
    d_items = [
        it.item_id
        for it in catalog
        if it.category[0] == other and catalog.is_recommendable(it.item_id)
    ][:3]
    events = [
        {"event_id": f"beh-{user_id}-{k}", "user_id": user_id, "item_id": i, "type": "view",
         "timestamp": "2026-10-01T12:00:00Z"}
        for k, i in enumerate(d_items)
    ]
    r = client.post("/v1/events", json={"events": events})
    assert r.status_code == 200 and r.json()["accepted"] == 3
    after = client.get("/v1/feed", params={"user_id": user_id, "size": 20}).json()
    d_shown = [it for it in after["items"] if it["category"][0] == other]
    assert d_shown, Counter(item["category"][0] for item in after["items"])
    # the new items are explained by the views that brought them
    reasons = [r for it in d_shown for r in it["reasons"]]
    assert any(r.get("related_item_id") in d_items for r in reasons)
    assert len(d_shown) > tops[other]
