"""Overhead of our OpenSearch search path over raw opensearch-py with the same request body.

    scripts/opensearch start
    .venv/bin/python bench/opensearch_overhead.py --opensearch-url http://127.0.0.1:9201

"Ours" is `OpenSearchBackend.search(request)`: query analysis (t2s, jieba, synonyms), body
building, the HTTP call, parsing hits and facets into `SearchResult`, highlights. "Raw" is
``client.search(index=alias, body=body)`` with the body our backend would send
(`OpenSearchBackend.search_body`, built beforehand, untimed), on the same opensearch-py
client. Both run the same query mix as bench/search.py (100k items, facets on every
request), interleaved (ours-then-raw, raw-then-ours, alternating) so caches favour neither.
Aim: ratio of medians ≤ 1.2.

Writes a table and ``bench/results/opensearch_overhead.json``. `measure_overhead` can also be
called from bench/search.py with a backend that already holds the shop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from search.opensearch_backend import OpenSearchBackend
    from search.query import SearchRequest

RESULTS = ROOT / "bench" / "results" / "opensearch_overhead.json"


def _pct(xs: list[float], p: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(round(p / 100 * (len(ys) - 1))))]


def measure_overhead(
    backend: OpenSearchBackend, requests: list[SearchRequest], warmup: int = 100
) -> dict[str, float]:
    """Time our path and raw opensearch-py on the same bodies; medians, p99s and ratios."""
    bodies = [backend.search_body(r) for r in requests]
    client, alias = backend.client, backend.alias
    for r, b in zip(requests[:warmup], bodies[:warmup], strict=True):
        backend.search(r)
        client.search(index=alias, body=b)
    ours: list[float] = []
    raw: list[float] = []
    for n, (r, b) in enumerate(zip(requests[warmup:], bodies[warmup:], strict=True)):
        order = ("ours", "raw") if n % 2 == 0 else ("raw", "ours")
        for which in order:
            t0 = time.perf_counter()
            if which == "ours":
                backend.search(r)
                ours.append((time.perf_counter() - t0) * 1000)
            else:
                client.search(index=alias, body=b)
                raw.append((time.perf_counter() - t0) * 1000)
    per_query = [o / w for o, w in zip(ours, raw, strict=True) if w > 0]
    return {
        "queries": len(ours),
        "ours_p50_ms": round(statistics.median(ours), 3),
        "raw_p50_ms": round(statistics.median(raw), 3),
        "ours_p99_ms": round(_pct(ours, 99), 3),
        "raw_p99_ms": round(_pct(raw, 99), 3),
        "ours_mean_ms": round(statistics.fmean(ours), 3),
        "raw_mean_ms": round(statistics.fmean(raw), 3),
        "ratio_of_medians": round(statistics.median(ours) / statistics.median(raw), 3),
        "ratio_of_means": round(statistics.fmean(ours) / statistics.fmean(raw), 3),
        "median_per_query_ratio": round(statistics.median(per_query), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--opensearch-url", default=os.environ.get("SHOPRANK_OPENSEARCH_URL"),
                    required=not os.environ.get("SHOPRANK_OPENSEARCH_URL"))
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument(
        "--shop", type=Path, default=None, help="synthetic shop folder (generated if empty)"
    )
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--index", default="shoprank-bench")
    ap.add_argument(
        "--reindex", action="store_true", help="rebuild even if the index holds the shop"
    )
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from bench.search import ensure_shop, query_mix
    from data.loaders import iter_items
    from search.analysis import Analyzer
    from search.opensearch_backend import OpenSearchBackend

    shop = args.shop or ROOT / "var" / "bench" / f"shop-{args.items}"
    items = list(iter_items(ensure_shop(shop, args.items)))[: args.items]
    reqs = query_mix(items, args.queries + args.warmup, args.seed)
    analyzer = Analyzer.from_file(None)
    analyzer.warm_up()
    backend = OpenSearchBackend(args.opensearch_url, index=args.index, analyzer=analyzer)
    try:
        if args.reindex or backend.count() != len(items):
            with tqdm(total=len(items), desc="indexing", unit="item") as bar:
                t0 = time.perf_counter()
                backend.rebuild(items, progress=bar.update)
            print(f"indexed {len(items):,} items in {time.perf_counter() - t0:.1f} s")
        result = measure_overhead(backend, reqs, warmup=args.warmup)
    finally:
        backend.close()
    result["items"] = len(items)

    table = Table(title=f"OpenSearch: our path vs raw opensearch-py, {len(items):,} items, "
                        f"{result['queries']:,} queries with facets")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result.items():
        table.add_row(k, str(v))
    Console().print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result_doc = {
        "opensearch_overhead": result,
        "command": "python bench/opensearch_overhead.py " + " ".join(sys.argv[1:]),
        "machine": f"{os.cpu_count()} cores",
    }
    RESULTS.write_text(json.dumps(result_doc, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
