"""Segments and profiles on small logs with answers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from analytics.errors import SegmentError
from analytics.segments import Thresholds, compute_segments, moves, quintile_scores
from data.catalog import Catalog
from data.models import Item

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def events(rows: list[tuple[str, str | None, str, float, float | None, str | None]]) -> pa.Table:
    """(user, item, type, days before AS_OF, value, session) rows."""
    return pa.table({
        "event_id": [f"e{k}" for k in range(len(rows))],
        "user_id": [r[0] for r in rows],
        "item_id": [r[1] for r in rows],
        "type": [r[2] for r in rows],
        "timestamp": pa.array([AS_OF - timedelta(days=r[3]) for r in rows],
                              pa.timestamp("us", tz="UTC")),
        "value": pa.array([r[4] for r in rows], pa.float64()),
        "session_id": [r[5] for r in rows],
    })


def catalog() -> Catalog:
    items = [Item(item_id=f"d{k}", title=f"dress {k}", category=("服裝", "女裝"), price=p)
             for k, p in enumerate([100, 200, 300, 400, 500, 600])]
    items += [Item(item_id=f"p{k}", title=f"phone {k}", category=("手機",), price=p)
              for k, p in enumerate([1000, 5000, 9000])]
    return Catalog(items)


LOG = [
    # a: first order 10 days ago, two orders (two sessions), cheap dresses → new, budget
    ("a", "d0", "view", 12, None, "s1"), ("a", "d0", "purchase", 10, 100.0, "s1"),
    ("a", "d1", "purchase", 5, 200.0, "s2"), ("a", "d1", "purchase", 5, 200.0, "s2"),
    # b: ordered 100 and 40 days ago (same day twice: one order each day) → active, premium
    ("b", "p2", "purchase", 100, 9000.0, None), ("b", "p2", "purchase", 100, 9000.0, None),
    ("b", "d5", "purchase", 40, 600.0, None), ("b", "p1", "view", 1, None, None),
    # c: one order 90 days ago, refunded half → at_risk
    ("c", "d3", "purchase", 90, 400.0, "s3"), ("c", "d3", "refund", 85, 200.0, None),
    # d: one order 200 days ago → churned
    ("d", "p0", "purchase", 200, 1000.0, "s4"),
    # e: only views → prospect; views phones more than dresses
    ("e", "p1", "view", 3, None, None), ("e", "p1", "click", 3, None, None),
    ("e", "d2", "view", 2, None, None),
    # an anonymous search without a user is ignored
    (None, None, "search", 1, None, None),  # type: ignore[list-item]
]


def test_rfm_lifecycle_and_profile_by_hand() -> None:
    segs = compute_segments(events(LOG), catalog=catalog(), as_of=AS_OF)
    rows = {r["user_id"]: r for r in segs.table.to_pylist()}
    assert set(rows) == {"a", "b", "c", "d", "e"}
    assert {u: rows[u]["lifecycle"] for u in rows} == {
        "a": "new", "b": "active", "c": "at_risk", "d": "churned", "e": "prospect"}
    # orders: a 2 sessions; b two days; c, d one each
    assert [rows[u]["orders"] for u in "abcde"] == [2, 2, 1, 1, 0]
    assert rows["a"]["monetary"] == 500.0 and rows["b"]["monetary"] == 18_600.0
    assert rows["c"]["monetary"] == 200.0  # 400 paid, 200 refunded
    assert rows["b"]["recency_days"] == pytest.approx(40.0) and rows["e"]["recency_days"] is None
    # recency scores: a (5 d) > b (40) > c (90) > d (200) among 4 buyers → 5, 4, 3, 2 by rank
    assert [rows[u]["r_score"] for u in "abcd"] == [5, 4, 3, 2] and rows["e"]["r_score"] == 0
    assert rows["a"]["rfm"] == f"{rows['a']['r_score']}{rows['a']['f_score']}{rows['a']['m_score']}"
    assert rows["b"]["m_score"] == 5 and rows["e"]["rfm"] == ""
    assert rows["e"]["top_categories"] == "手機|服裝"  # phone view 1 + click 2 > dress view 1
    assert rows["b"]["top_categories"].split("|")[0] == "手機"
    assert rows["a"]["price_band"] == "budget" and rows["b"]["price_band"] == "premium"
    assert segs.sizes() == {"new": 1, "active": 1, "at_risk": 1, "churned": 1, "prospect": 1}


def test_thresholds_move_stages_and_are_validated() -> None:
    segs = compute_segments(events(LOG), as_of=AS_OF,
                            thresholds=Thresholds(new_days=5, at_risk_days=20, churned_days=95))
    stage = segs.stage_of()
    assert stage["a"] == "active" and stage["b"] == "at_risk" and stage["c"] == "at_risk"
    with pytest.raises(SegmentError, match="at_risk_days < churned_days"):
        Thresholds(at_risk_days=100, churned_days=50)


def test_without_a_catalog_price_bands_come_from_the_purchase_values() -> None:
    segs = compute_segments(events(LOG), as_of=AS_OF, exclude={"e"})
    rows = {r["user_id"]: r for r in segs.table.to_pylist()}
    assert "e" not in rows and rows["a"]["top_categories"] == ""
    assert rows["a"]["price_band"] == "budget" and rows["b"]["price_band"] == "premium"


def test_moves_count_changes_only() -> None:
    before = compute_segments(events(LOG), as_of=AS_OF).table
    later = compute_segments(events(LOG), as_of=AS_OF + timedelta(days=60)).table
    assert moves(None, later) == {}
    # 60 days on: a (last order 65 d) at_risk, b (100 d) at_risk, c (150 d) churned
    assert moves(before, later) == {"new": {"at_risk": 1}, "active": {"at_risk": 1},
                                    "at_risk": {"churned": 1}}


def test_quintiles_share_scores_on_ties() -> None:
    assert quintile_scores(np.array([1.0, 1, 1, 1, 9])).tolist() == [3, 3, 3, 3, 5]
    with pytest.raises(SegmentError, match="no events"):
        compute_segments(events([("x", "d0", "view", 1, None, None)]), exclude={"x"})


def test_average_ranks_are_scipys() -> None:
    from scipy.stats import rankdata

    from analytics.segments import average_ranks

    rng = np.random.default_rng(3)
    for values in (rng.integers(0, 5, 200).astype(float), rng.random(50), np.array([2.0]),
                   np.array([1.0, 1.0, 1.0]), rng.integers(0, 3, 1000)):
        np.testing.assert_allclose(average_ranks(values), rankdata(values, method="average"))
