"""Search latency and throughput: a mix of queries with facets on a synthetic shop.

    .venv/bin/python bench/search.py                       # 100k items, embedded only
    .venv/bin/python bench/search.py --opensearch-url http://127.0.0.1:9201   # both backends

The shop is generated once into ``--shop`` (default ``var/bench/shop-<items>``) and reused.
Each backend gets a fresh full index (timed), then ``--warmup`` queries, then ``--queries``
timed queries one after another (latency p50/p90/p99, single-client QPS), then the same
queries from ``--threads`` threads (throughput QPS). Results: a table on stdout and
``bench/results/search.json`` (other keys in that file are kept).

Query mix (seeded): labeled shopper queries from `search.relevance.make_queries` (Chinese,
simplified, English, brand, typos); every request asks for facets brand, category_l2 and
price; 30% add a brand or price filter (multi-select facets then need extra aggregations),
10% sort by price, 10% ask for page 2, 10% are empty-text category browsing.

Texts repeat (at most 600 distinct), as shoppers' queries do, so the embedded backend's facet
cache (counts per text + filters, dropped on every index change) answers part of the facet
work: ``facet_repeat_share`` is the share of timed queries whose text + filters came earlier.
``--no-facet-cache`` measures without it. ``--engine`` searches through
`search.engine.SearchEngine` (price words, relaxation, hybrid retrieval; its aids are built
after the index, included in the index time) and makes ``--shopper-share`` (20 %) of the
texts hand-written shopper queries (`search.shopper_queries`), which relax or fall back.
``--rerank-depth 50`` asks for the top 50 of every query, as the API does when it re-ranks
for a user before cutting the page. ``--repeat N`` runs the embedded backend N times from a fresh
index (and fresh caches) and reports the median of each number, with every run's latencies
under ``runs`` (the host is shared: single runs move with the other sessions' load).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.loaders import iter_items  # noqa: E402
from data.models import Item  # noqa: E402
from search.analysis import Analyzer  # noqa: E402
from search.backend import SearchBackend  # noqa: E402
from search.engine import SearchEngine  # noqa: E402
from search.query import SearchRequest  # noqa: E402
from search.relevance import make_queries  # noqa: E402
from search.result import SearchResult  # noqa: E402
from search.shopper_queries import shopper_queries  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "search.json"


def ensure_shop(shop: Path, n_items: int) -> Path:
    items = shop / "items.jsonl"
    if not items.is_file():
        from data.synthetic import ShopSpec, generate

        print(f"generating a {n_items:,}-item shop in {shop} …", flush=True)
        generate(
            ShopSpec(n_users=200, n_items=n_items, n_events=2_000, seed=11), shop, progress=True
        )
    return items


def query_mix(
    items: list[Item], n: int, seed: int, shopper_share: float = 0.0
) -> list[SearchRequest]:
    rng = random.Random(seed)
    texts = [q.text for q in make_queries(items, min(n, 600), seed=seed)]
    if shopper_share > 0:  # hand-written shopper queries: regional words, typos, price words
        shopper = [q.text for q in shopper_queries(items)]
        k = int(len(texts) * shopper_share / (1 - shopper_share))
        texts += [shopper[i % len(shopper)] for i in range(k)]
    brands = sorted({i.brand for i in items if i.brand})
    l2 = sorted({i.category[1] for i in items if len(i.category) > 1})
    facets = ["brand", "category_l2", "price"]
    out: list[SearchRequest] = []
    for _ in range(n):
        r = rng.random()
        kw: dict[str, object] = {"facets": facets, "size": 10}
        if r < 0.10:
            kw["filters"] = [{"field": "category_l2", "values": [rng.choice(l2)]}]
        else:
            kw["text"] = rng.choice(texts)
            f = rng.random()
            if f < 0.15:
                kw["filters"] = [{"field": "brand", "values": rng.sample(brands, 2)}]
            elif f < 0.30:
                low = rng.choice([0, 200, 500, 1000])
                kw["filters"] = [{"field": "price", "gte": low, "lt": low * 2 + 500}]
            s = rng.random()
            if s < 0.10:
                kw["sort"] = rng.choice(["price_asc", "price_desc"])
            elif s < 0.20:
                kw["page"] = 2
        out.append(SearchRequest.model_validate(kw))
    return out


def show(r: SearchRequest, res: SearchResult) -> None:
    """What a page render reads: the highlighted titles of the page's hits (hits are
    highlighted on first use; a re-ranking caller cuts the page from the top hits)."""
    page = res.hits[r.page_slice()] if r.rerank_depth else res.hits
    for h in page:
        h.highlighted_title  # noqa: B018 - computed on access


def percentile(xs: list[float], p: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(round(p / 100 * (len(ys) - 1))))]


def run_backend(
    backend: SearchBackend, items: list[Item], reqs: list[SearchRequest], warmup: int, threads: int
) -> dict[str, float]:
    t0 = time.perf_counter()
    backend.rebuild(items)
    index_s = time.perf_counter() - t0
    warm_and_timed = reqs
    for r in reqs[:warmup]:
        backend.search(r)
    reqs = reqs[warmup:]
    lat: list[float] = []
    cpu: list[float] = []
    empty = 0
    t0 = time.perf_counter()
    for r in reqs:
        c = time.process_time()
        s = time.perf_counter()
        res = backend.search(r)
        show(r, res)
        lat.append((time.perf_counter() - s) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        empty += res.total == 0
    seq_s = time.perf_counter() - t0

    # throughput with several client threads
    chunks = [reqs[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def worker(rs: list[SearchRequest]) -> None:
        try:
            for r in rs:
                show(r, backend.search(r))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    par_s = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {
        "items": len(items),
        "queries": len(reqs),
        "index_seconds": round(index_s, 2),
        "index_items_per_s": round(len(items) / index_s, 1),
        "p50_ms": round(statistics.median(lat), 3),
        "p90_ms": round(percentile(lat, 90), 3),
        "p99_ms": round(percentile(lat, 99), 3),
        "mean_ms": round(statistics.fmean(lat), 3),
        # CPU time of this process per query: what the query costs here, without the wait
        # for a core on a shared machine (for OpenSearch most work is in the server).
        "cpu_p50_ms": round(statistics.median(cpu), 3),
        "cpu_p99_ms": round(percentile(cpu, 99), 3),
        "qps_1_client": round(len(reqs) / seq_s, 1),
        f"qps_{threads}_threads": round(len(reqs) / par_s, 1),
        "zero_hit_share": round(empty / len(reqs), 3),
        "load_average": round(os.getloadavg()[0], 2),
        "facet_repeat_share": round(repeat_share(warm_and_timed, warmup), 3),
    }


def facet_key(r: SearchRequest) -> tuple[object, ...]:
    return (r.text, r.typo_tolerance, r.filters, r.facets, r.include_inactive)


def repeat_share(reqs: list[SearchRequest], warmup: int) -> float:
    """Share of the timed requests whose facet key (text + filters) was asked before."""
    seen = {facet_key(r) for r in reqs[:warmup]}
    repeats = 0
    for r in reqs[warmup:]:
        key = facet_key(r)
        repeats += key in seen
        seen.add(key)
    return repeats / max(1, len(reqs) - warmup)


_RUN_KEYS = ("p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms", "load_average")


def summary(run: dict[str, float]) -> str:
    return ", ".join(f"{k} {run[k]}" for k in _RUN_KEYS if k in run)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each number's median over the runs (one run: itself), and the runs' latencies."""
    if len(runs) == 1:
        return runs[0]
    out: dict[str, object] = {
        k: round(statistics.median(float(r[k]) for r in runs), 3)  # type: ignore[arg-type]
        for k in runs[0]
        if isinstance(runs[0][k], int | float)
    }
    out["repeat"] = len(runs)
    out["runs"] = [{k: r[k] for k in _RUN_KEYS if k in r} for r in runs]  # type: ignore[assignment]
    return out  # type: ignore[return-value]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--items", type=int, default=100_000, help="catalog size (default 100k)")
    ap.add_argument(
        "--shop", type=Path, default=None, help="synthetic shop folder (generated if empty)"
    )
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--repeat", type=int, default=1, help="runs per backend (fresh index); medians reported"
    )
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument(
        "--index-dir", type=Path, default=None, help="embedded index folder (default: temp)"
    )
    ap.add_argument(
        "--opensearch-url",
        default=os.environ.get("SHOPRANK_OPENSEARCH_URL"),
        help="OpenSearch node (e.g. from scripts/opensearch start); omitted → embedded only",
    )
    ap.add_argument("--backends", default="embedded,opensearch")
    ap.add_argument(
        "--rerank-depth",
        type=int,
        default=None,
        help="ask for the top N of each query (the API re-ranks its top 50)",
    )
    ap.add_argument(
        "--engine",
        action="store_true",
        help="embedded: search through search.engine.SearchEngine (relaxation, hybrid)",
    )
    ap.add_argument(
        "--shopper-share",
        type=float,
        default=0.2,
        help="with --engine: share of query texts from search.shopper_queries",
    )
    ap.add_argument(
        "--no-facet-cache",
        action="store_true",
        help="embedded: compute every facet count (no cache of repeated text + filters)",
    )
    args = ap.parse_args()

    import tempfile

    from rich.console import Console
    from rich.table import Table

    shop = args.shop or ROOT / "var" / "bench" / f"shop-{args.items}"
    items = list(iter_items(ensure_shop(shop, args.items)))[: args.items]
    reqs = query_mix(
        items,
        args.queries + args.warmup,
        args.seed,
        shopper_share=args.shopper_share if args.engine else 0.0,
    )
    if args.rerank_depth:
        reqs = [r.model_copy(update={"rerank_depth": args.rerank_depth}) for r in reqs]
    warm, timed = reqs[: args.warmup], reqs[args.warmup :]
    analyzer = Analyzer.from_file(None)
    analyzer.warm_up()
    wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    load_before = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, dict[str, float]] = {}
    for kind in wanted:
        if kind == "embedded":
            from search.tantivy_backend import FACET_CACHE_SIZE, TantivyBackend

            name = kind + ("_no_facet_cache" if args.no_facet_cache else "")
            name += f"_top{args.rerank_depth}" if args.rerank_depth else ""
            name += "_engine" if args.engine else ""
            runs: list[dict[str, float]] = []
            for i in range(args.repeat):
                with tempfile.TemporaryDirectory(prefix="shoprank-bench-") as tmp:
                    backend = TantivyBackend(
                        args.index_dir or Path(tmp) / "index",
                        analyzer=analyzer,
                        facet_cache_size=0 if args.no_facet_cache else FACET_CACHE_SIZE,
                    )
                    if args.engine:  # price words, relaxation, hybrid (aids built per index)
                        backend = SearchEngine(
                            backend, analyzer=analyzer, aids_root=Path(tmp) / "aids"
                        )
                    try:
                        runs.append(
                            run_backend(backend, items, warm + timed, len(warm), args.threads)
                        )
                    finally:
                        backend.close()
                print(f"{name} run {i + 1}/{args.repeat}: {summary(runs[-1])}", flush=True)
            results[name] = medians(runs)
        elif kind == "opensearch":
            if not args.opensearch_url:
                print("opensearch: skipped (no --opensearch-url / SHOPRANK_OPENSEARCH_URL)")
                continue
            from search.opensearch_backend import OpenSearchBackend

            backend = OpenSearchBackend(
                args.opensearch_url, index="shoprank-bench", analyzer=analyzer
            )
            try:
                results[kind] = run_backend(backend, items, warm + timed, len(warm), args.threads)
                # Our OpenSearch path vs raw opensearch-py with the same bodies (OPENSEARCH owner).
                from bench.opensearch_overhead import measure_overhead

                overhead = measure_overhead(backend, warm + timed, warmup=len(warm))
                results[kind]["overhead_ratio_p50"] = overhead["ratio_of_medians"]
                results[kind]["raw_opensearch_py_p50_ms"] = overhead["raw_p50_ms"]
            finally:
                backend.close()
        else:
            ap.error(f"unknown backend {kind!r}")

    table = Table(title=f"search: {len(items):,} items, {len(timed):,} queries with facets")
    keys = list(dict.fromkeys(k for r in results.values() for k in r if k != "runs"))
    table.add_column("metric")
    for k in results:
        table.add_column(k, justify="right")
    for key in keys:
        table.add_row(key, *[str(results[b].get(key, "")) for b in results])
    Console().print(table)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    # No machine paths in results: the shop folder is recorded by its size only.
    argv = [a for a in sys.argv[1:]]
    for i, a in enumerate(argv[:-1]):
        if a in ("--shop", "--index-dir"):
            argv[i + 1] = "DIR"
    run_info = {
        "command": "python bench/search.py " + " ".join(argv),
        "machine": f"{os.cpu_count()} cores",
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    for kind, r in results.items():
        previous[kind] = {**r, **run_info}
    for stale in ("command", "machine", "load_average_before", "load_average_after"):
        previous.pop(stale, None)
    RESULTS.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
