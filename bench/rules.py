"""Benchmark: what merchandising costs per request — rule application, query planning,
experiment assignment with the served-request log, and a KPI report.

    python bench/rules.py                    # defaults below
    python bench/rules.py --rules 200 --items 200 --repeat 2000

Prints a table (medians in microseconds) and writes bench/results/rules.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _time(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=50, help="Stored rules (a mix of every action).")
    ap.add_argument("--items", type=int, default=200, help="Length of the ranked list.")
    ap.add_argument("--catalog", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=1000)
    ap.add_argument("--events", type=int, default=200_000, help="Events in the KPI report.")
    ap.add_argument(
        "--results", type=Path, default=Path(__file__).parent / "results" / "rules.json"
    )
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from analytics.reports import build_report
    from data.catalog import Catalog
    from data.models import Event, EventContext, Item
    from merch.experiment_store import SqliteExperimentStore
    from merch.experiments import ExperimentService, ExperimentSpec
    from merch.request_log import SqliteRequestLog
    from merch.rules import RuleSpec, apply_rules, plan_query
    from ranking.types import RankContext, ScoredItem

    rng = random.Random(0)
    now = datetime.now(UTC)
    brands = [f"brand{b}" for b in range(50)]
    cats = [("服裝", f"c{c}") for c in range(20)]
    catalog = Catalog(
        Item(
            item_id=f"i{i}",
            title=f"商品 {i}",
            brand=rng.choice(brands),
            category=rng.choice(cats),
            price=rng.uniform(10, 2000),
            stock=5,
            created_at=now - timedelta(days=rng.randint(0, 300)),
        )
        for i in range(args.catalog)
    )
    kinds = ["pin", "boost", "bury", "hide", "filter", "rewrite"]
    rules = []
    for n in range(args.rules):
        kind = kinds[n % len(kinds)]
        query = {"text": f"word{n % 10}", "match": "contains"}
        if kind == "pin":
            action = {"type": "pin", "pins": [{"item_id": f"i{n}", "position": 1 + n % 10}]}
            query = {"text": f"pinq{n}", "match": "equals"}
        elif kind in ("boost", "bury"):
            action = {"type": kind, "filter": {"brands": [rng.choice(brands)]}, "weight": 0.5}
        elif kind == "hide":
            action = {"type": "hide", "filter": {"price_min": 1990}}
        elif kind == "filter":
            action = {"type": "filter", "filter": {"in_stock": True}}
        else:
            action = {"type": "rewrite", "text": "replacement"}
        rules.append(RuleSpec.model_validate({
            "id": f"r{n:04d}", "name": f"rule {n}", "priority": n % 5,
            "condition": {"contexts": ["search"], "query": query}, "actions": [action]}).to_rule())
    items = [
        ScoredItem(f"i{rng.randrange(args.catalog)}", float(args.items - k))
        for k in range(args.items)
    ]
    ctx = RankContext(surface="search", query="word3 word7 red dress", user_id="u1", now=now)

    rows: list[tuple[str, list[float]]] = []
    rows.append((f"apply_rules ({args.rules} rules, {args.items} items)",
                 _time(lambda: apply_rules(items, ctx, rules, catalog), args.repeat)))
    rows.append(
        (
            f"plan_query ({args.rules} rules)",
            _time(lambda: plan_query(ctx.query or "", ctx, rules), args.repeat),
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        requests = SqliteRequestLog(Path(tmp) / "requests.sqlite")
        svc = ExperimentService(SqliteExperimentStore(Path(tmp) / "e.sqlite"))
        svc.create(ExperimentSpec.model_validate({"id": "e", "name": "e", "variants": [
            {"name": "A", "share": 1}, {"name": "B", "share": 1}]}))
        svc.start("e")
        counter = iter(range(10**9))

        def assign_and_log() -> None:  # what the pipeline does per request
            ctx = RankContext(surface="feed", user_id=f"u{next(counter) % 5000}",
                              request_id=f"q{next(counter)}", now=now)
            got = svc.assign(ctx)
            requests.record(request_id=ctx.request_id or "", at=now, surface="feed",
                            user_id=ctx.user_id, experiment=got.experiment if got else None,
                            variant=got.variant if got else None)

        rows.append(("experiment assign + request log", _time(assign_and_log, args.repeat)))
        requests.flush()
        events = []
        for k in range(args.events):
            uid = f"u{k % 5000}"
            t = rng.choice(["impression"] * 8 + ["click", "purchase"])
            events.append(Event(event_id=f"e{k}", user_id=uid, item_id=f"i{k % 999}", type=t,
                                timestamp=datetime.now(UTC) + timedelta(minutes=1 + k % 10_000),
                                value=99.0 if t == "purchase" else None,
                                context=EventContext(surface="feed", experiment="e",
                                                     variant="A" if k % 2 else "B")))
        exp = svc.get("e")
        rep = _time(lambda: build_report(events, experiment=exp, requests=requests), 3)
        counted = build_report(events, experiment=exp, requests=requests).events
        assert counted == args.events, f"the report saw {counted} of {args.events} events"
        rows.append((f"build_report ({args.events:,} events, experiment)", rep))

    table = Table(title="Merchandising costs (median / p95, µs)", title_justify="left")
    for c in ("step", "median µs", "p95 µs", "runs"):
        table.add_column(c, justify="left" if c == "step" else "right")
    results = []
    for name, ts in rows:
        ts_sorted = sorted(ts)
        p95 = ts_sorted[min(len(ts) - 1, int(0.95 * len(ts)))]
        med = statistics.median(ts)
        table.add_row(name, f"{med:,.0f}", f"{p95:,.0f}", str(len(ts)))
        results.append(
            {"step": name, "median_us": round(med, 1), "p95_us": round(p95, 1), "runs": len(ts)}
        )
    Console().print(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1
        )
    )


if __name__ == "__main__":
    main()
