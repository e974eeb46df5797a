"""Benchmark: how long the synthetic shop generator takes, and its peak memory.

    python bench/generate.py                      # 1M users × 100k items × 20M events
    python bench/generate.py --users 100000 --items 10000 --events 2000000

Prints a table and writes bench/results/generate.json. Peak memory is the process's
maximum resident set size (``resource.getrusage``) during generation, which includes the
interpreter and the imported libraries. Then it times ``read_events_table`` on the events
(what training pays to load them: all columns, then only user_id, item_id, type,
timestamp, value; skip with --skip-read).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRAINING_COLUMNS = ["user_id", "item_id", "type", "timestamp", "value"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--out", type=Path, default=None, help="Keep the shop here (default: a temp dir, removed)."
    )
    ap.add_argument(
        "--results", type=Path, default=Path(__file__).parent / "results" / "generate.json"
    )
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument(
        "--skip-read", action="store_true", help="Do not time read_events_table afterwards."
    )
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from data.synthetic import ShopSpec, generate

    spec = ShopSpec(n_users=args.users, n_items=args.items, n_events=args.events, seed=args.seed)
    out = args.out or Path(tempfile.mkdtemp(prefix="shoprank-bench-"))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    summary = generate(spec, out, progress=not args.no_progress, events_format="parquet")
    seconds = time.perf_counter() - t
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sizes = {f: (out / f).stat().st_size for f in summary.files}
    read_seconds = read_training_seconds = None
    if not args.skip_read:
        # what training pays to get the events back as an Arrow table (vectorized checks included)
        from data.loaders import read_events_table

        t = time.perf_counter()
        n_read = read_events_table(out / "events.parquet").num_rows
        read_seconds = time.perf_counter() - t
        assert n_read == summary.n_events
        t = time.perf_counter()
        n_read = read_events_table(out / "events.parquet", columns=TRAINING_COLUMNS).num_rows
        read_training_seconds = time.perf_counter() - t
        assert n_read == summary.n_events
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)

    result = {
        "benchmark": "generate",
        "command": "python bench/generate.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "users": spec.n_users,
        "items": spec.n_items,
        "events_requested": spec.n_events,
        "events": summary.n_events,
        "sessions": summary.n_sessions,
        "seconds": round(seconds, 2),
        "events_per_second": round(summary.n_events / seconds),
        "peak_rss_mib": round(peak_mib, 1),
        "rss_before_mib": round(rss0 / 1024, 1),
        "read_events_table_seconds": None if read_seconds is None else round(read_seconds, 2),
        "read_training_columns_seconds": (
            None if read_training_seconds is None else round(read_training_seconds, 2)
        ),
        "file_mib": {f: round(b / 2**20, 1) for f, b in sizes.items()},
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    table = Table(title="generator benchmark", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in (
        "users",
        "items",
        "events",
        "sessions",
        "seconds",
        "events_per_second",
        "peak_rss_mib",
        "read_events_table_seconds",
        "read_training_columns_seconds",
    ):
        table.add_row(k, f"{result[k]:,}" if isinstance(result[k], int) else str(result[k]))
    for f, mib in result["file_mib"].items():
        table.add_row(f"{f} (MiB)", str(mib))
    Console().print(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
