"""Benchmark: reading the recent traffic a rule preview samples, from an event log of
``--events`` events (default 500k): the whole log parsed (what previews did) against the tail
read from the end (``EventLog.recent``), plus ``sample_contexts`` on what was read.

    python bench/preview.py
    python bench/preview.py --events 100000 --last 5000

A fresh temporary log each run. Prints a table (median seconds over ``--repeat`` runs) and
writes bench/results/preview.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.eventlog import EventLog  # noqa: E402
from data.models import Event, EventContext  # noqa: E402
from merch.rules.preview import sample_contexts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def fill(log: EventLog, n: int) -> None:
    rng = random.Random(3)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    queries = ["連衣裙", "dress", "手機", "耳機", "跑鞋", "帳篷"]

    def events():  # type: ignore[no-untyped-def]
        for k in range(n):
            ts = start + timedelta(seconds=k * 30 * 86_400 / n)
            if k % 10 == 0:
                yield Event(event_id=f"e{k}", user_id=f"u{rng.randrange(50_000)}", type="search",
                            timestamp=ts, context=EventContext(query=rng.choice(queries)))
            else:
                yield Event(event_id=f"e{k}", user_id=f"u{rng.randrange(50_000)}",
                            item_id=f"i{rng.randrange(10_000)}", type="view", timestamp=ts)

    log.append_many(events())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--last", type=int, default=5000, help="The preview's sample_last.")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "preview.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog(Path(tmp) / "events", sync=False)
        t0 = time.perf_counter()
        fill(log, args.events)
        print(f"wrote {args.events:,} events in {time.perf_counter() - t0:.0f} s", flush=True)
        rows = {}
        for name, read in (("whole log", lambda: log.iter_events()),
                           ("tail (recent)", lambda: log.recent(4 * args.last))):
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                for surface in ("search", "feed", "similar"):
                    samples = sample_contexts(read(), surface, n=50, last=args.last)
                    assert samples, surface
                times.append((time.perf_counter() - t) / 3)
            rows[name] = statistics.median(times)
        log.close()
    result = {"events": args.events, "last": args.last, "median_seconds": rows,
              "ratio": rows["whole log"] / rows["tail (recent)"],
              "load_avg": round(os.getloadavg()[0], 1)}
    print(f"\n{'read per preview sample':<28}{'median s':>10}")
    for k, v in rows.items():
        print(f"{k:<28}{v:>10.3f}")
    print(f"{'ratio':<28}{result['ratio']:>10.0f}x")
    print(f"{'load average':<28}{result['load_avg']:>10}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
