"""Benchmark: the KPI report (``analytics.reports.build_report``) on a synthetic shop's events.

    python bench/report.py --events-file SHOP/events.parquet            # every event in the file
    python bench/report.py --events-file SHOP/events.parquet --limit 2000000
    python bench/report.py --events 2000000                              # generate a shop first

Times, as medians of ``--repeat`` runs: reading the report's columns from Parquet, the report
overall/per day/per surface, and the report of the shop's experiment (variants attributed by
context and by request id through a served-request log holding every list in the file). The
event-by-event implementation it replaced (``tests/analytics/report_reference.py``) is timed on
the first ``--reference-events`` events for the ratio. Prints a table; writes
bench/results/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _close(a: object, b: object) -> bool:
    """Equal report dicts, floats within 1e-9 relative (summation order differs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


CPU: dict[int, list[float]] = {}
"""CPU seconds of this process per timed call (by id of its wall-time list): on a shared,
busy machine wall time includes waiting for a core; CPU time does not."""


def _timed(fn, repeat: int) -> tuple[list[float], object]:  # type: ignore[no-untyped-def]
    out, cpu, last = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        last = fn()
        out.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU[id(out)] = cpu
    return out, last


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events-file", type=Path, help="A shop's events.parquet (any event file).")
    ap.add_argument("--limit", type=int, default=0, help="Use only the first N events.")
    ap.add_argument("--events", type=int, default=2_000_000, help="Generate this many if no file.")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reference-events", type=int, default=200_000)
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "report.json")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        _run(args, argv, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the shop (if generated) and the request log


def _run(args: argparse.Namespace, argv: list[str] | None, tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    from rich.console import Console
    from rich.table import Table

    from analytics.reports import REPORT_COLUMNS, build_report
    from data.loaders import read_events_table
    from data.models import Event, EventContext
    from merch.experiments import Experiment, Variant
    from merch.request_log import SqliteRequestLog
    from tests.analytics.report_reference import reference_report

    CONTEXT = ("session_id", "request_id", "experiment", "variant", "surface")
    path = args.events_file
    if path is None:
        from data.synthetic import ShopSpec, generate

        n = args.events
        generate(
            ShopSpec(n_users=max(1000, n // 20), n_items=max(500, n // 200), n_events=n, seed=7),
            tmp / "shop",
            progress=False,
        )
        path = tmp / "shop" / "events.parquet"

    read_s, table = _timed(lambda: read_events_table(path, columns=REPORT_COLUMNS), 1)
    assert isinstance(table, pa.Table)
    if args.limit:
        table = table.slice(0, args.limit)
    n = table.num_rows

    # the shop's experiment, as the API would have run it
    exp_col = pc.drop_null(table.column("experiment"))
    counts = pc.value_counts(exp_col).to_pylist()
    eid = max(counts, key=lambda c: c["counts"])["values"] if counts else "none"
    names = sorted(v for v in pc.unique(table.column("variant")).to_pylist() if v is not None) or [
        "A",
        "B",
    ]
    start = pc.min(table.column("timestamp")).as_py()
    exp = Experiment(
        experiment_id=eid,
        name=eid,
        variants=tuple(Variant(v, 1.0) for v in names),
        control=names[0],
        status="running",
        started_at=start - timedelta(seconds=1),
    )
    # a served-request log with one row per list in the file; the events keep their context
    log = SqliteRequestLog(tmp / "requests.sqlite", batch=100_000)
    served = (
        table.filter(pc.is_valid(table.column("request_id")))
        .group_by("request_id", use_threads=False)
        .aggregate(
            [
                ("timestamp", "min"),
                ("surface", "first"),
                ("user_id", "first"),
                ("experiment", "first"),
                ("variant", "first"),
            ]
        )
    )
    for r in served.to_pylist():
        log.record(
            request_id=r["request_id"],
            at=r["timestamp_min"],
            surface=r["surface_first"] or "feed",
            user_id=r["user_id_first"],
            experiment=r["experiment_first"],
            variant=r["variant_first"],
        )
    log.flush()

    overall_s, rep = _timed(lambda: build_report(table), args.repeat)
    exp_s, rep_exp = _timed(lambda: build_report(table, experiment=exp, requests=log), args.repeat)
    assert rep.events == n, f"the report saw {rep.events} of {n} events"  # type: ignore[attr-defined]

    k = min(args.reference_events, n)
    ref_events = [
        Event(
            event_id=f"e{j}",
            user_id=r["user_id"],
            item_id=r["item_id"],
            type=r["type"],
            timestamp=r["timestamp"],
            value=r["value"],
            context=EventContext(
                **{c: r[c] for c in CONTEXT if r[c] is not None},
                query="q" if r["type"] == "search" else None,  # not a report column
            ),
        )
        for j, r in enumerate(table.slice(0, k).to_pylist())
    ]
    ref_s, ref = _timed(lambda: reference_report(ref_events, experiment=exp, requests=log), 1)
    col_small_s, col_small = _timed(
        lambda: build_report(table.slice(0, k), experiment=exp, requests=log), args.repeat
    )
    same = _close(ref.as_dict(), col_small.as_dict())  # type: ignore[attr-defined]

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    rows = [
        (f"read report columns ({n:,} events)", med(read_s), n),
        (f"build_report overall/day/surface ({n:,})", med(overall_s), n),
        (f"build_report with experiment + request log ({n:,})", med(exp_s), n),
        (f"build_report with experiment ({k:,})", med(col_small_s), k),
        (f"event-by-event reference with experiment ({k:,})", med(ref_s), k),
    ]
    cpu = {
        name: med(CPU[id(xs)])
        for name, xs in zip(
            [r[0] for r in rows], [read_s, overall_s, exp_s, col_small_s, ref_s], strict=True
        )
    }
    table_out = Table(title="KPI report (medians)", title_justify="left")
    for c in ("step", "wall s", "CPU s", "wall µs / event"):
        table_out.add_column(c, justify="left" if c == "step" else "right")
    for name, s, count in rows:
        table_out.add_row(name, f"{s:,.2f}", f"{cpu[name]:,.2f}", f"{s / count * 1e6:,.2f}")
    console = Console()
    console.print(table_out)
    speedup = med(ref_s) / med(col_small_s)
    console.print(
        f"columnar vs event-by-event at {k:,} events: {speedup:,.0f}x faster; "
        f"same report as the reference: {same}; served lists in the log: {served.num_rows:,}; "
        f"peak RSS {_rss_mib():,.0f} MiB; load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    results = {
        "benchmark": "report",
        "command": "python bench/report.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "events": n,
        "served_requests": served.num_rows,
        "variants": names,
        "read_seconds": round(med(read_s), 3),
        "report_seconds": round(med(overall_s), 3),
        "report_experiment_seconds": round(med(exp_s), 3),
        "cpu_seconds": {name: round(v, 3) for name, v in cpu.items()},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "us_per_event": round(med(exp_s) / n * 1e6, 3),
        "reference_events": k,
        "reference_seconds": round(med(ref_s), 3),
        "columnar_seconds_at_reference_size": round(med(col_small_s), 3),
        "speedup_at_reference_size": round(speedup, 1),
        "reference_same_report": same,
        "attribution": dict(rep_exp.attribution),  # type: ignore[attr-defined]
        "peak_rss_mib": round(_rss_mib(), 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
