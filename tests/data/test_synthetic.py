"""The synthetic shop: deterministic bytes, valid records, and the statistics it promises."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from data.loaders import load_events, load_items, load_users, read_events_table
from data.synthetic import (
    BEHAVIOUR_TASTES,
    LEAVES,
    GenerateSummary,
    ShopSpec,
    generate,
    load_truth,
)
from tests.data.conftest import SMALL

FILES = (
    "items.jsonl",
    "users.jsonl",
    "events.parquet",
    "events.jsonl",
    "truth.json",
    "truth_users.parquet",
)


def _bytes(d: Path) -> dict[str, bytes]:
    return {f: (d / f).read_bytes() for f in FILES}


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path, small_shop) -> None:
    shop, _ = small_shop
    again = tmp_path / "again"
    generate(SMALL, again, progress=False)
    assert _bytes(again) == _bytes(shop)
    other = tmp_path / "other"
    generate(replace(SMALL, seed=8), other, progress=False)
    theirs = _bytes(other)
    assert all(theirs[f] != _bytes(shop)[f] for f in FILES)


def test_every_record_is_valid_and_counts_match(small_shop) -> None:
    shop, summary = small_shop
    items, users, events = (
        load_items(shop / "items.jsonl"),
        load_users(shop / "users.jsonl"),
        load_events(shop / "events.jsonl"),
    )
    assert (items.rejected, users.rejected, events.rejected) == (0, 0, 0)
    assert (items.loaded, users.loaded, events.loaded) == (
        SMALL.n_items,
        SMALL.n_users,
        summary.n_events,
    )
    assert abs(summary.n_events - SMALL.n_events) / SMALL.n_events < 0.15
    table = read_events_table(shop / "events.parquet")
    assert table.num_rows == summary.n_events
    assert table.column("event_id").to_pylist() == [e.event_id for e in events.records]
    assert len(set(table.column("event_id").to_pylist())) == table.num_rows
    ts = table.column("timestamp")
    assert pc.min(ts).as_py() >= SMALL.start_dt and pc.max(ts).as_py() < SMALL.end_dt


def test_catalog_is_searchable_bilingual_and_covers_every_leaf(small_shop) -> None:
    shop, summary = small_shop
    items = load_items(shop / "items.jsonl").records
    assert {i.category for i in items} == {leaf.zh for leaf in LEAVES}
    assert summary.leaves_covered == len(LEAVES) == summary.n_leaves
    assert len({leaf.zh[0] for leaf in LEAVES}) == 8 and len(LEAVES) >= 40
    for item in items:
        leaf = next(lf for lf in LEAVES if lf.zh == item.category)
        assert leaf.zh[2] in item.title and leaf.noun in item.title
        assert item.brand and item.brand in item.title
        variant = next(
            item.attributes[k] for k in ("colour", "flavour", "scent") if k in item.attributes
        )
        assert str(variant).lower() in item.title.lower()
    red = [i for i in items if "紅色" in i.title]
    assert red and all("Red" in i.title and i.attributes["colour"] == "red" for i in red)
    assert any(i.stock == 0 for i in items) and any(not i.is_active for i in items)
    assert any(i.created_at >= SMALL.start_dt for i in items)
    # prices follow the category: laptops cost more than phone cases
    med = lambda leaf: np.median([i.price for i in items if i.category[-1] == leaf])  # noqa: E731
    assert med("筆記型電腦") > 10 * med("手機殼")


def test_funnel_rates_are_plausible(small_shop) -> None:
    _, s = small_shop
    c = s.counts
    assert set(c) == {
        "impression",
        "view",
        "click",
        "add_to_cart",
        "remove_from_cart",
        "favorite",
        "purchase",
        "refund",
        "rate",
        "share",
        "search",
    }
    assert 0.02 <= c["click"] / c["impression"] <= 0.2
    assert 0.01 <= c["add_to_cart"] / c["view"] <= 0.12
    assert 0.15 <= c["purchase"] / c["add_to_cart"] <= 0.7
    assert 0.005 <= c["refund"] / c["purchase"] <= 0.1
    assert c["view"] > c["click"] > c["add_to_cart"] > c["purchase"] > c["refund"]


def test_hidden_taste_drives_behaviour(small_shop) -> None:
    shop, _ = small_shop
    truth = load_truth(shop)
    tastes = truth.user_tastes()
    assert len(tastes) == SMALL.n_users
    assert json.loads((shop / "truth.json").read_text())["users"]["u0"] == tastes["u0"]
    leaf_of = {i.item_id: i.category_path for i in load_items(shop / "items.jsonl").records}
    t = read_events_table(shop / "events.parquet")
    t = t.filter(pc.is_in(t["type"], value_set=__import__("pyarrow").array(["view", "purchase"])))
    inside = Counter()
    total = Counter()
    for u, i in zip(t["user_id"].to_pylist(), t["item_id"].to_pylist(), strict=True):
        total[u] += 1
        inside[u] += leaf_of[i] in tastes[u]["leaves"]
    share = sum(inside.values()) / sum(total.values())
    assert share > 0.7
    # and users come back on several days
    days = defaultdict(set)
    for u, ts in zip(t["user_id"].to_pylist(), t["timestamp"].to_pylist(), strict=True):
        days[u].add(ts.date())
    assert np.median([len(v) for v in days.values()]) >= 2
    # activity is heavy-tailed: the busiest 10% of users make a large share of events
    counts = np.sort(np.array(list(total.values())))[::-1]
    assert counts[: len(counts) // 10].sum() / counts.sum() > 0.25


def test_bundles_are_bought_together_and_trending_items_spike(small_shop) -> None:
    shop, summary = small_shop
    truth = load_truth(shop)
    assert len(truth.bundles) == summary.n_bundles >= 5
    t = read_events_table(shop / "events.parquet")
    buys = t.filter(pc.equal(t["type"], "purchase"))
    per_session = defaultdict(set)
    for s, i in zip(buys["session_id"].to_pylist(), buys["item_id"].to_pylist(), strict=True):
        per_session[s].add(i)
    together = sum(any(a in b and p in b for b in per_session.values()) for a, p in truth.bundles)
    assert together >= len(truth.bundles) // 2
    assert summary.bundle_copurchases > 0

    views = t.filter(pc.equal(t["type"], "view"))
    cut = SMALL.end_dt.timestamp() - truth.trend_days * 86400
    recent, before = Counter(), Counter()
    for i, ts in zip(views["item_id"].to_pylist(), views["timestamp"].to_pylist(), strict=True):
        (recent if ts.timestamp() >= cut else before)[i] += 1
    window_share = truth.trend_days / SMALL.days
    for item in truth.trending:
        rate_recent = recent[item] / window_share
        rate_before = (before[item] + 1) / (1 - window_share)
        assert rate_recent > 3 * rate_before, item


def test_truth_users_parquet_and_events_schema(small_shop) -> None:
    shop, _ = small_shop
    tu = pq.read_table(shop / "truth_users.parquet")
    assert tu.column_names == [
        "user_id", "leaves", "brands", "price_sensitivity", "activity", *BEHAVIOUR_TASTES
    ]
    assert all(1 <= len(v) <= 3 for v in tu["leaves"].to_pylist())
    schema = pq.read_schema(shop / "events.parquet")
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"


def test_events_jsonl_only_when_small_or_asked(tmp_path: Path) -> None:
    spec = ShopSpec(n_users=100, n_items=100, n_events=2_000, seed=1, days=10)
    s: GenerateSummary = generate(spec, tmp_path / "p", progress=False, events_format="parquet")
    assert "events.jsonl" not in s.files and not (tmp_path / "p" / "events.jsonl").exists()
    s = generate(spec, tmp_path / "j", progress=False, events_format="jsonl")
    assert "events.parquet" not in s.files and (tmp_path / "j" / "events.jsonl").exists()


@pytest.mark.parametrize(
    "bad", [dict(n_users=0), dict(n_items=10), dict(days=0), dict(trend_days=0), dict(seed=-1)]
)
def test_spec_rejects_bad_sizes(bad: dict) -> None:
    with pytest.raises(ValueError):
        ShopSpec(**bad)
