"""Benchmark: CPU per row written to the served-request log as it grows, random vs time-ordered ids.

    python bench/request_log.py                 # 3M rows per kind of id
    python bench/request_log.py --rows 500000   # quicker

Fills a fresh ``requests.sqlite`` through ``SqliteRequestLog`` (the server's class: buffered,
batches of 500, one ``INSERT OR REPLACE`` per batch) with request ids made either as
``uuid4().hex`` (what the server made before) or by ``serving.metrics.new_request_id``
(time-ordered), ``at`` increasing as in a live server. Reports the CPU seconds per 1,000 rows
of each fifth of the run. Prints a table and writes bench/results/request_log.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def fill(folder: Path, rows: int, make_id: Callable[[], str], parts: int = 5) -> list[float]:
    """CPU ms per 1,000 rows for each of ``parts`` equal parts of ``rows`` inserts."""
    from merch.request_log import SqliteRequestLog

    log = SqliteRequestLog(folder / "requests.sqlite", flush_seconds=3600, batch=10**9)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    per_part = rows // parts
    out = []
    try:
        for part in range(parts):
            t = time.process_time()
            for i in range(part * per_part, (part + 1) * per_part):
                log.record(
                    request_id=make_id(),
                    at=start + timedelta(milliseconds=i),
                    surface="recommend",
                    user_id=f"u{i % 1_000_000}",
                )
                if i % 500 == 499:
                    log.flush()
            log.flush()
            out.append((time.process_time() - t) / per_part * 1e6)
    finally:
        log.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "request_log.json")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from serving.metrics import new_request_id

    kinds: dict[str, Callable[[], str]] = {"random (uuid4)": lambda: uuid.uuid4().hex,
                                           "time-ordered": new_request_id}
    results = {}
    for name, make in kinds.items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = fill(Path(tmp), args.rows, make)
        print(f"{name}: done", file=sys.stderr)
    step = args.rows // 5
    table = Table(title=f"request log: CPU ms per 1,000 rows written, {args.rows:,} rows")
    table.add_column("rows already in the log", justify="right")
    for name in kinds:
        table.add_column(name, justify="right")
    table.add_column("ratio", justify="right")
    rand, ordered = results["random (uuid4)"], results["time-ordered"]
    for p in range(5):
        table.add_row(f"{p * step:,}–{(p + 1) * step:,}", f"{rand[p]:.1f}", f"{ordered[p]:.1f}",
                      f"{rand[p] / ordered[p]:.2f}×")
    Console().print(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps({"rows": args.rows, "cpu_ms_per_1000_rows": results}, indent=2)
    )


if __name__ == "__main__":
    main()
