"""KPI reports: intervals on known data, attribution by request id, significance, charts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from data.models import Event, EventContext
from recsys.experiment_store import SqliteRequestLog
from recsys.experiments import ExperimentSpec, assign_variant
from recsys.report_charts import inline_svg, save_charts, variant_chart
from recsys.reports import build_report, compare, mean_ci, wilson

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def ev(n: int, user: str, type_: str, at: datetime, item: str = "i1", **ctx: object) -> Event:
    value = ctx.pop("value", None)
    return Event(
        event_id=f"e{n}",
        user_id=user,
        item_id=item,
        type=type_,
        timestamp=at,  # type: ignore[arg-type]
        value=value,
        context=EventContext(**ctx),
    )  # type: ignore[arg-type]


def test_wilson_and_mean_intervals_on_known_values() -> None:
    w = wilson(10, 100)  # textbook: 0.1, [0.0552, 0.1744]
    assert (w.value, round(w.low, 4), round(w.high, 4)) == (0.1, 0.0552, 0.1744)
    assert wilson(0, 10).low == 0.0 and wilson(0, 0).value is None
    m = mean_ci([1, 2, 3, 4, 5])  # mean 3, sd 1.5811, se 0.7071
    assert m.value == 3 and m.high - m.value == pytest.approx(1.96 * 0.70711, rel=1e-3)


def test_two_proportion_comparison() -> None:
    c = compare("ctr", "B", "A", wilson(120, 1000), wilson(100, 1000))  # z = 1.43, p = 0.153
    assert c.p_value == pytest.approx(0.153, abs=0.002) and not c.significant
    assert c.lift == pytest.approx(0.2) and "not yet significant" in c.statement
    assert c.needed_per_variant is not None and c.needed_per_variant > 1000
    big = compare("ctr", "B", "A", wilson(1200, 10000), wilson(1000, 10000))
    assert big.significant and big.p_value < 0.001 and "significant" in big.statement
    assert big.lift_low is not None and 0.1 < big.lift_low < 0.2 < big.lift_high  # type: ignore[operator]


def test_overall_day_and_surface_slices_on_known_events() -> None:
    d1, d2 = T0, T0 + timedelta(days=1)
    events = [
        ev(1, "u1", "impression", d1, surface="feed"),
        ev(2, "u1", "impression", d1, surface="feed"),
        ev(3, "u1", "click", d1, surface="feed"),
        ev(4, "u1", "add_to_cart", d1, surface="feed"),
        ev(5, "u1", "purchase", d1, value=100.0, session_id="s1"),
        ev(6, "u1", "purchase", d1, value=50.0, session_id="s1", item="i2"),
        ev(7, "u1", "purchase", d2, value=30.0, session_id="s2"),
        ev(8, "u2", "impression", d1, surface="search"),
        ev(9, "u2", "impression", d2, surface="search"),
        ev(10, "u3", "purchase", d2, value=20.0),
        ev(11, "u3", "refund", d2, value=20.0),
    ]
    r = build_report(events)
    o = r.overall
    assert (o.users, o.impressions, o.clicks, o.purchases, o.orders, o.revenue) == (
        3,
        4,
        1,
        4,
        3,
        180.0,
    )
    assert o.metrics["ctr"].value == 0.25
    assert o.metrics["conversion_rate"].value == pytest.approx(2 / 3)
    assert o.metrics["add_to_cart_rate"].value == pytest.approx(1 / 3)
    assert o.metrics["revenue_per_user"].value == pytest.approx(60.0)  # (180 + 0 + 0) / 3
    assert o.metrics["aov"].value == pytest.approx((150 + 30 + 20) / 3)  # one order per session/day
    assert o.metrics["repurchase_rate"].value == 0.5  # u1 bought on two days, u3 on one
    assert o.metrics["retention"].value == pytest.approx(2 / 3)  # u1 and u2 came back
    assert [d.label for d in r.by_day] == ["2025-03-01", "2025-03-02"]
    assert {s.label: s.impressions for s in r.by_surface} == {"feed": 2, "search": 2}


def _simulated(
    tmp_path: Path, ctr_a: float, ctr_b: float, users: int = 1500, seed: int = 7
) -> tuple:
    """Served feed requests logged like the API does; the storefront echoes only request_id."""
    exp = ExperimentSpec.model_validate(
        {
            "id": "blend",
            "name": "blend",
            "surfaces": ["feed"],
            "variants": [{"name": "A", "share": 50}, {"name": "B", "share": 50}],
        }
    ).to_experiment()
    exp = type(exp)(
        **{**{f: getattr(exp, f) for f in exp.__slots__}, "status": "running", "started_at": T0}
    )
    log = SqliteRequestLog(tmp_path / "req.sqlite")
    rng = random.Random(seed)
    events, n = [], 0
    for u in range(users):
        uid = f"u{u}"
        v = assign_variant(exp, uid).name
        p = ctr_a if v == "A" else ctr_b
        for k in range(4):
            at = T0 + timedelta(hours=u % 48, minutes=k)
            rid = f"req-{u}-{k}"
            log.record(
                request_id=rid, at=at, surface="feed", user_id=uid, experiment="blend", variant=v
            )
            for pos in range(5):
                n += 1
                events.append(
                    ev(n, uid, "impression", at, item=f"i{pos}", request_id=rid, position=pos)
                )
                if rng.random() < p:
                    n += 1
                    events.append(ev(n, uid, "click", at, item=f"i{pos}", request_id=rid))
        if rng.random() < (0.05 if v == "A" else 0.08):  # a purchase with no request id
            n += 1
            events.append(ev(n, uid, "purchase", T0 + timedelta(days=2), value=99.0))
    return exp, log, events


def test_variant_report_finds_the_truly_better_variant(tmp_path: Path) -> None:
    exp, log, events = _simulated(tmp_path, ctr_a=0.05, ctr_b=0.065)
    r = build_report(events, experiment=exp, requests=log)
    assert [v.label for v in r.by_variant] == ["A", "B"]
    assert (
        r.attribution["request_id"] > 0
        and r.attribution["user"] > 0
        and r.attribution["context"] == 0
    )
    a, b = r.by_variant
    assert a.users + b.users == 1500 and a.purchases + b.purchases == r.overall.purchases
    ctr = next(c for c in r.comparisons if c.metric == "ctr")
    assert ctr.significant and ctr.lift is not None and 0.15 < ctr.lift < 0.45
    assert r.winner() == "B" and "significant" in r.verdict and "not yet" not in r.verdict
    d = r.as_dict()
    assert d["winner"] == "B" and d["by_variant"][1]["metrics"]["ctr"]["low"] > 0.05


def test_no_real_difference_is_reported_not_yet_significant(tmp_path: Path) -> None:
    # an A/A test: at alpha = 0.05 about one seed in twenty flags a difference; this one does not
    exp, log, events = _simulated(tmp_path, ctr_a=0.05, ctr_b=0.05, users=400, seed=3)
    r = build_report(events, experiment=exp, requests=log)
    ctr = next(c for c in r.comparisons if c.metric == "ctr")
    assert not ctr.significant and r.winner() is None
    assert r.verdict.startswith("CTR: not yet significant")


def test_charts_render_png_and_inline_svg(tmp_path: Path) -> None:
    exp, log, events = _simulated(tmp_path, ctr_a=0.05, ctr_b=0.07, users=200)
    r = build_report(events, experiment=exp, requests=log)
    paths = save_charts(r, tmp_path / "charts")
    assert [p.name for p in paths][:2] == ["kpi-overview.png", "blend-ctr.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    svg = inline_svg(variant_chart(r))
    assert svg.startswith("<svg") and "CTR by variant" in svg
