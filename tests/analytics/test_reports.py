"""KPI reports: intervals on known data, attribution by request id, significance, charts."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics.charts import inline_svg, save_charts, variant_chart
from analytics.reports import build_report
from analytics.statistics import compare, mean_ci, wilson
from data.models import Event, EventContext
from merch.errors import ReportError
from merch.experiments import ExperimentSpec, assign_variant
from merch.request_log import SqliteRequestLog

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
    tmp_path.mkdir(parents=True, exist_ok=True)
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


def test_a_a_tests_are_rarely_called_significant_across_seeds(tmp_path: Path) -> None:
    """Honest A/A check. Both variants have the same true CTR, so under the null each seed's
    CTR comparison is significant with probability alpha = 0.05 (one comparison, so no
    Bonferroni split), independently across seeds: the number of false positives over 20 seeds
    is Binomial(20, 0.05) — mean 1, P(>= 5) = 0.003. More than 4 means the report's test is too
    eager. Its p-values should also look uniform (mean 0.5; with 20 seeds the mean's standard
    deviation is 0.065), so a report that never calls anything significant fails too."""
    import numpy as np
    import pyarrow as pa

    exp, _, _ = _simulated(tmp_path, ctr_a=0.05, ctr_b=0.05, users=0)
    users = [f"u{u}" for u in range(400)]
    variants = [assign_variant(exp, u).name for u in users]
    n_imp = 20  # impressions per user: 8,000 per test, about 4,000 per variant
    seeds = range(100, 120)
    flagged, p_values = 0, []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        clicks = rng.random((len(users), n_imp)) < 0.05
        uid = np.repeat(users, n_imp).tolist() + np.repeat(users, clicks.sum(1)).tolist()
        var = np.repeat(variants, n_imp).tolist() + np.repeat(variants, clicks.sum(1)).tolist()
        n_click = int(clicks.sum())
        table = pa.table(
            {
                "user_id": uid,
                "item_id": ["i1"] * len(uid),
                "type": ["impression"] * (len(users) * n_imp) + ["click"] * n_click,
                "timestamp": pa.array(
                    [T0 + timedelta(hours=1)] * len(uid), pa.timestamp("us", "UTC")
                ),
                "value": pa.nulls(len(uid), pa.float64()),
                "session_id": pa.nulls(len(uid), pa.string()),
                "request_id": pa.nulls(len(uid), pa.string()),
                "experiment": ["blend"] * len(uid),
                "variant": var,
                "surface": ["feed"] * len(uid),
            }
        )
        r = build_report(table, experiment=exp)
        ctr = next(c for c in r.comparisons if c.metric == "ctr")
        assert ctr.p_value is not None and r.attribution["context"] == len(uid)
        p_values.append(ctr.p_value)
        flagged += int(ctr.significant)
        assert ctr.significant == (ctr.p_value < 0.05)
        assert (r.winner() is not None) == ctr.significant
    assert flagged <= 4, f"{flagged} of {len(seeds)} A/A tests called significant"
    assert 0.3 < sum(p_values) / len(p_values) < 0.7, p_values


def test_charts_render_png_and_inline_svg(tmp_path: Path) -> None:
    exp, log, events = _simulated(tmp_path, ctr_a=0.05, ctr_b=0.07, users=200)
    r = build_report(events, experiment=exp, requests=log)
    paths = save_charts(r, tmp_path / "charts")
    assert [p.name for p in paths][:2] == ["kpi-overview.png", "blend-ctr.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    svg = inline_svg(variant_chart(r))
    assert svg.startswith("<svg") and "CTR by variant" in svg


def _random_traffic(tmp_path: Path, seed: int, n: int = 3000, echo: float = 0.0) -> tuple:
    """Messy random traffic: every type, sessions or none (also empty), values or catalog
    prices, surfaces in the event or only in the request log, variants by context, by
    request id and by user, events outside the experiment's window. ``echo``: the share of
    events whose storefront echoed surface, experiment and variant (little to look up)."""
    from data.catalog import Catalog
    from data.models import Item

    rng = random.Random(seed)
    exp = ExperimentSpec.model_validate(
        {
            "id": "x",
            "name": "x",
            "variants": [
                {"name": "A", "share": 40},
                {"name": "B", "share": 30},
                {"name": "C", "share": 30},
            ],
        }
    ).to_experiment()
    exp = type(exp)(
        **{
            **{f: getattr(exp, f) for f in exp.__slots__},
            "status": "stopped",
            "started_at": T0 + timedelta(hours=5),
            "stopped_at": T0 + timedelta(days=4),
        }
    )
    catalog = Catalog(Item(item_id=f"i{k}", title=f"t{k}", price=10.0 + k) for k in range(20))
    log = SqliteRequestLog(tmp_path / f"req{seed}.sqlite")
    for r in range(200):
        u = f"u{rng.randrange(60)}"
        in_exp = rng.random() < 0.6
        log.record(
            request_id=f"r{r}",
            at=T0,
            surface=rng.choice(["feed", "search", "similar"]),
            user_id=u if rng.random() < 0.9 else None,
            experiment="x" if in_exp else rng.choice([None, "other"]),
            variant=rng.choice(["A", "B", "C", "Z"]) if in_exp else None,
        )
    types = ["impression"] * 6 + ["click"] * 2 + ["add_to_cart", "purchase", "refund", "view"]
    events = []
    for k in range(n):
        t = rng.choice(types)
        ctx: dict[str, object] = {}
        if rng.random() < 0.5:
            ctx["session_id"] = rng.choice(["", "s1", "s2", f"s{rng.randrange(40)}"])
        if rng.random() < 0.6:
            ctx["request_id"] = f"r{rng.randrange(260)}"
        if rng.random() < 0.2:
            ctx["surface"] = rng.choice(["feed", "search", "home"])
        if rng.random() < 0.15:
            ctx["experiment"] = rng.choice(["x", "x", "y"])
            ctx["variant"] = rng.choice(["A", "B", "C", "D"])
        if rng.random() < echo:
            ctx.update(surface="feed", experiment="x", variant=rng.choice(["A", "B", "C"]))
        if t in ("purchase", "refund") and rng.random() < 0.7:
            ctx["value"] = round(rng.uniform(1, 300), 2)
        at = T0 + timedelta(minutes=rng.randrange(6 * 24 * 60))
        events.append(ev(k, f"u{rng.randrange(80)}", t, at, item=f"i{rng.randrange(25)}", **ctx))
    return exp, log, events, catalog


@pytest.mark.parametrize(("seed", "echo"), [(1, 0.0), (2, 0.0), (3, 0.95)])
def test_columnar_report_equals_the_event_by_event_reference(
    tmp_path: Path, seed: int, echo: float
) -> None:
    from data.event_table import events_to_table
    from tests.analytics.report_reference import reference_report

    exp, log, events, catalog = _random_traffic(tmp_path, seed, echo=echo)
    for kw in (
        {},
        {"start": T0 + timedelta(days=1), "end": T0 + timedelta(days=3)},
        {"experiment": exp, "requests": log},
        {"experiment": exp, "requests": log, "catalog": catalog, "start": T0 + timedelta(days=2)},
        {"requests": log, "catalog": catalog, "primary_metric": "revenue_per_user"},
    ):
        want = reference_report(events, **kw).as_dict()  # type: ignore[arg-type]
        got = build_report(events_to_table(events), **kw).as_dict()  # type: ignore[arg-type]
        assert _diff(got, want) == []
        if "requests" in kw:  # a request log with only the protocol's row-wise lookup
            rowwise = {**kw, "requests": _RowWise(log)}
            assert _diff(build_report(events, **rowwise).as_dict(), want) == []  # type: ignore[arg-type]
        assert build_report(events, **kw).as_dict() == got  # type: ignore[arg-type]


class _RowWise:
    """A request log offering only ``lookup`` (no column-wise read)."""

    def __init__(self, log: SqliteRequestLog) -> None:
        self.lookup = log.lookup


def _diff(a: object, b: object, path: str = "") -> list[str]:
    """Paths where two report dicts differ (floats within 1e-9 relative are equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _diff(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [
            d
            for n, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _diff(x, y, f"{path}[{n}]")
        ]
    if isinstance(a, float) and isinstance(b, float):
        return [] if a == pytest.approx(b, rel=1e-9, abs=1e-9) else [f"{path}: {a} != {b}"]
    if isinstance(a, str) and isinstance(b, str) and a != b:
        # statements print rounded numbers: a sum in another order may round the last digit
        # the other way (55.075 → "55.07" / "55.08"); the words must match exactly
        num = r"[-+]?\d[\d,]*\.?\d*(?:e[-+]?\d+)?"
        words_a, words_b = re.split(num, a), re.split(num, b)
        nums_a = [float(x.replace(",", "")) for x in re.findall(num, a)]
        nums_b = [float(x.replace(",", "")) for x in re.findall(num, b)]
        close = len(nums_a) == len(nums_b) and all(
            x == pytest.approx(y, rel=1e-3, abs=0.011) for x, y in zip(nums_a, nums_b, strict=True)
        )
        return [] if words_a == words_b and close else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_columnar_report_on_a_hand_computed_table(tmp_path: Path) -> None:
    """A table with only the report's columns: surfaces from the event or the request log,
    variants by context (u2), by request id (u3's list) and by user (their later purchases),
    an empty session id (the order is the day's), a missing value (the catalog price)."""
    import pyarrow as pa

    from analytics.reports import REPORT_COLUMNS
    from data.catalog import Catalog
    from data.event_table import EVENT_SCHEMA
    from data.models import Item

    exp = ExperimentSpec.model_validate(
        {
            "id": "e",
            "name": "e",
            "variants": [{"name": "A", "share": 50}, {"name": "B", "share": 50}],
        }
    ).to_experiment()
    exp = type(exp)(
        **{**{f: getattr(exp, f) for f in exp.__slots__}, "status": "running", "started_at": T0}
    )
    assert (assign_variant(exp, "u3").name, assign_variant(exp, "u2").name) == ("A", "B")
    log = SqliteRequestLog(tmp_path / "req.sqlite")
    log.record(request_id="r1", at=T0, surface="feed", user_id="u3", experiment="e", variant="A")
    log.record(request_id="r2", at=T0, surface="search")  # an anonymous visitor's search
    d1, d2 = T0 + timedelta(hours=1), T0 + timedelta(days=1)

    def row(user: str, type_: str, at: datetime, **kw: object) -> dict[str, object]:
        return {"user_id": user, "item_id": "i1", "type": type_, "timestamp": at, **kw}

    rows = [
        row("u3", "impression", d1, request_id="r1"),
        row("u3", "click", d1, request_id="r1"),
        row("u2", "impression", d1, experiment="e", variant="B", surface="feed"),
        row("u2", "purchase", d1, item_id="i9", session_id=""),
        row("v9", "click", d1, request_id="r2"),
        row("u3", "purchase", d2, value=25.0, session_id="s1"),
        row("u3", "refund", d2, value=5.0, session_id="s1"),
        row("u2", "impression", T0 - timedelta(hours=1), experiment="e", variant="B"),
    ]
    schema = pa.schema([EVENT_SCHEMA.field(c) for c in REPORT_COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    catalog = Catalog([Item(item_id="i9", title="nine", price=40.0)])
    r = build_report(table, experiment=exp, requests=log, catalog=catalog)

    o = r.overall
    assert r.events == 7  # the impression before the start is out
    assert (o.users, o.impressions, o.clicks, o.purchases, o.orders, o.revenue) == (
        3,
        2,
        2,
        2,
        2,
        60.0,
    )
    m = o.metrics
    assert m["ctr"].value == 1.0 and m["conversion_rate"].value == pytest.approx(2 / 3)
    rpu = m["revenue_per_user"]  # u3 20, u2 40, v9 0: mean 20, sample variance 400
    assert (rpu.value, rpu.variance, rpu.n) == (20.0, 400.0, 3)
    assert (m["aov"].value, m["aov"].n) == (32.5, 2)  # u2's day order 40, u3's session 25
    assert m["repurchase_rate"].value == 0.0 and m["retention"].value == pytest.approx(1 / 3)
    day = {d.label: (d.users, d.purchases, d.revenue) for d in r.by_day}
    assert day == {"2025-03-01": (3, 1, 40.0), "2025-03-02": (1, 1, 20.0)}
    surf = {s.label: (s.users, s.impressions, s.clicks) for s in r.by_surface}
    assert surf == {"feed": (2, 2, 1), "search": (1, 0, 1)}
    assert next(s for s in r.by_surface if s.label == "search").metrics["ctr"].value is None
    var = {
        v.label: (v.users, v.impressions, v.clicks, v.purchases, v.revenue) for v in r.by_variant
    }
    assert var == {"A": (1, 1, 1, 1, 20.0), "B": (1, 1, 0, 1, 40.0)}
    assert dict(r.attribution) == {"context": 1, "request_id": 2, "user": 3}
    assert {k: [d.label for d in v] for k, v in r.by_variant_day.items()} == {
        "A": ["2025-03-01", "2025-03-02"],
        "B": ["2025-03-01"],
    }
    with pytest.raises(ReportError, match="lacks column"):
        build_report(table.drop_columns(["session_id"]))
