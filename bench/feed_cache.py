"""Benchmark: the feed pagination cache — µs per get / put of a 200-item ranked feed.

    python bench/feed_cache.py                      # 2,000 puts and gets over a 5,000-row file
    python bench/feed_cache.py --rows 20000 --ops 5000
    python bench/feed_cache.py --home var/bench-serve-20000x5000 --users 20000   # real feeds

Times, one thread: the in-process LRU (``RankedListCache``, one worker only), the shared SQLite
cache (``SqliteRankedListCache``; put = encode + upsert, pruning every 64 writes included;
get = select + decode of a random live key) and the body encoding alone. The lists are synthetic
200-item feeds shaped like real ones (item ids ``i<n>``, one or two reasons per item from a
dozen distinct ones, a context and model versions) or, with ``--home`` (a home bench/serve.py
prepared), real feeds from ``pipeline.feed``, whose own time is then reported alongside.
The file lives in a temporary folder on the repository's disk and is removed afterwards.
Prints a table and writes bench/results/feed_cache.json.
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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _feed(r: random.Random, n: int = 200):  # noqa: ANN202 - a ranking.pipeline.Ranked
    from ranking.pipeline import Ranked
    from ranking.types import RankContext, Reason, ScoredItem

    pool = [Reason("cf", model_version="v7"), Reason("trending", model_version="v3"),
            Reason("new_arrival"), Reason("promoted", rule_id="r2")]
    pool += [Reason("history", related_item_id=f"i{r.randrange(100_000)}", model_version="v5")
             for _ in range(8)]
    items = []
    score = 3.0
    for _ in range(n):
        score -= r.random() * 0.01
        reasons = tuple(r.sample(pool, r.choice((1, 1, 2))))
        bd = MappingProxyType({x.source: score / len(reasons) for x in reasons})
        items.append(ScoredItem(f"i{r.randrange(100_000)}", score, reasons, bd))
    ctx = RankContext(surface="feed", user_id=f"u{r.randrange(1_000_000)}",
                      user_attributes={"region": "台北市", "tier": "gold"})
    return Ranked(items, ctx, "personalized", MappingProxyType({"als": "v7", "item_knn": "v5"}))


def _time(fn: Callable[[int], object], ops: int) -> dict[str, float]:
    ts = []
    for k in range(ops):
        t = time.perf_counter()
        fn(k)
        ts.append((time.perf_counter() - t) * 1e6)
    ts.sort()
    return {"p50_us": statistics.median(ts), "p99_us": ts[int(len(ts) * 0.99) - 1],
            "mean_us": statistics.fmean(ts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000, help="Live feeds in the file before timing.")
    ap.add_argument("--ops", type=int, default=2_000)
    ap.add_argument("--home", type=Path, default=None,
                    help="Rank real feeds on this prepared home.")
    ap.add_argument("--users", type=int, default=20_000, help="Users of --home to draw from.")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "feed_cache.json")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from serving.feed_cache import (
        RankedListCache,
        SqliteRankedListCache,
        decode_ranked,
        encode_ranked,
    )

    r = random.Random(7)
    results: dict[str, dict[str, float]] = {}
    if args.home is None:
        feeds = [_feed(r) for _ in range(50)]
    else:
        from core.settings import Settings
        from serving.state import Services

        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        settings = Settings(home=args.home, search_backend="embedded", model_poll_seconds=0,
                            feed_cache_backend="memory")
        services = Services.build(settings, with_search=False)
        pipe = services.pipeline
        depth = pipe.config.feed_depth  # what GET /v1/feed keeps of a ranked list
        feeds = [replace(f, items=f.items[:depth])
                 for f in (pipe.feed(user_id=f"u{r.randrange(args.users)}") for _ in range(50))]
        results["pipeline.feed (ranking)"] = _time(
            lambda k: pipe.feed(user_id=f"u{r.randrange(args.users)}"), min(args.ops, 300))
    size = args.rows + 2 * args.ops
    with tempfile.TemporaryDirectory(dir=ROOT / "var" if (ROOT / "var").is_dir() else None) as tmp:
        path = Path(tmp) / "feed_cache.sqlite"
        sq = SqliteRankedListCache(path, size, 900.0)
        for k in tqdm(range(args.rows), desc="filling", unit="feed"):
            sq.put(f"fill{k}", feeds[k % len(feeds)])
        mem = RankedListCache(size, 900.0)
        for k in range(args.rows):
            mem.put(f"fill{k}", feeds[k % len(feeds)])
        keys = [f"fill{r.randrange(args.rows)}" for _ in range(args.ops)]
        body = encode_ranked(feeds[0])
        results["encode (body)"] = _time(lambda k: encode_ranked(feeds[k % 50]), args.ops)
        results["decode (body)"] = _time(lambda k: decode_ranked(body), args.ops)
        results["memory put"] = _time(lambda k: mem.put(f"new{k}", feeds[k % 50]), args.ops)
        results["memory get"] = _time(lambda k: mem.get(keys[k]), args.ops)
        results["sqlite put"] = _time(lambda k: sq.put(f"new{k}", feeds[k % 50]), args.ops)
        results["sqlite get"] = _time(lambda k: sq.get(keys[k]), args.ops)
        results["sqlite get (miss)"] = _time(lambda k: sq.get(f"absent{k}"), args.ops)
        rows = len(sq)
        file_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
        sq.close()

    n_items = round(statistics.fmean(len(f.items) for f in feeds))
    source = "synthetic" if args.home is None else f"real ({args.home.name})"
    table = Table(title=f"feed cache, {source} {n_items}-item feeds, {args.rows:,} stored, "
                        f"{args.ops:,} ops")
    for col in ("operation", "p50 µs", "p99 µs", "mean µs"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for name, v in results.items():
        table.add_row(name, f"{v['p50_us']:.1f}", f"{v['p99_us']:.1f}", f"{v['mean_us']:.1f}")
    console = Console()
    console.print(table)
    body_bytes = len(body)
    console.print(f"body {body_bytes / 1000:.1f} KB a feed (the first); "
                  f"file {file_mb:.1f} MB for {rows:,} rows; "
                  f"load avg {os.getloadavg()[0]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "rows": args.rows, "ops": args.ops, "items": n_items, "feeds": source,
        "body_bytes": body_bytes,
        "file_mb": file_mb, "rows_after": rows, "load_avg": os.getloadavg()[0], "results": results,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
