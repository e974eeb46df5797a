"""Benchmark: event log appends (fsync'ed, acknowledged) and reads.

    python bench/eventlog.py                 # defaults below
    python bench/eventlog.py --threads 16 --singles 4000 --batches 50 --batch-size 1000

Three numbers: single-event appends from N threads (the API's pattern; group commit shares
fsyncs), appends in batches, and reading everything back as an Arrow table. Prints a table and
writes bench/results/eventlog.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="Runs; the table shows medians.")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--singles", type=int, default=2000, help="Single-event appends in total.")
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument(
        "--results", type=Path, default=Path(__file__).parent / "results" / "eventlog.json"
    )
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    runs = [measure(args) for _ in range(args.repeat)]
    result: dict[str, object] = {
        "benchmark": "eventlog",
        "command": "python bench/eventlog.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "repeat": args.repeat,
    }
    for k in runs[0]:
        result[k] = statistics.median(r[k] for r in runs)
    result["runs"] = runs
    table = Table(title=f"event log benchmark (median of {args.repeat})", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.items():
        if k not in ("benchmark", "command", "runs"):
            table.add_row(k, str(v))
    Console().print(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")


def measure(args: argparse.Namespace) -> dict[str, float]:
    from data.eventlog import EventLog
    from data.models import Event

    t0 = datetime(2026, 11, 23, tzinfo=UTC)

    def event(i: int) -> Event:
        return Event(
            event_id=f"e{i}",
            user_id=f"u{i % 997}",
            item_id=f"i{i % 5003}",
            type="view",
            timestamp=t0 + timedelta(seconds=i * 7),
            context={"session_id": f"s{i // 10}"},
        )

    root = Path(tempfile.mkdtemp(prefix="shoprank-eventlog-"))
    try:
        log = EventLog(root)
        latencies: list[float] = []
        lock = threading.Lock()
        per_thread = args.singles // args.threads

        def worker(k: int) -> None:
            mine = []
            for j in range(per_thread):
                e = event(k * per_thread + j)
                s = time.perf_counter()
                log.append([e])
                mine.append(time.perf_counter() - s)
            with lock:
                latencies.extend(mine)

        s = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        singles_s = time.perf_counter() - s
        n_singles = per_thread * args.threads

        base = n_singles
        events = [event(base + i) for i in range(args.batches * args.batch_size)]
        s = time.perf_counter()
        for b in range(args.batches):
            log.append(events[b * args.batch_size : (b + 1) * args.batch_size])
        batch_s = time.perf_counter() - s

        s = time.perf_counter()
        again = log.append(events[: args.batch_size])
        dup_s = time.perf_counter() - s
        assert not again.accepted

        s = time.perf_counter()
        n = log.read_table().num_rows
        read_s = time.perf_counter() - s
        assert n == n_singles + len(events) == log.count()
        log.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    latencies.sort()
    return {
        "threads": args.threads,
        "single_appends": n_singles,
        "single_appends_per_second": round(n_singles / singles_s),
        "single_append_latency_ms_median": round(statistics.median(latencies) * 1000, 2),
        "single_append_latency_ms_p99": round(
            latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2
        ),
        "batch_size": args.batch_size,
        "batched_events_per_second": round(len(events) / batch_s),
        "duplicate_batch_ms": round(dup_s * 1000, 1),
        "read_table_events": n,
        "read_table_seconds": round(read_s, 3),
    }


if __name__ == "__main__":
    main()
