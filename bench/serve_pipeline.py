"""Benchmark: online ranking in-process (no HTTP) — p50/p99 per surface and memory.

    python bench/serve_pipeline.py          # the home bench/serve.py prepared (1M × 100k)
    python bench/serve_pipeline.py --home var/bench-serve-20000x5000 --users 20000 --items 5000

Builds ``Services`` on a prepared home (run bench/serve.py first), then times
``pipeline.recommend``, ``pipeline.feed``, ``pipeline.similar`` and the search route's
``run_search`` for random users / items / queries, one thread, BLAS limited to one thread as
in the server. Then the CPU per request of the hot routes' handlers (``GET /v1/feed`` page 1,
page 2 of the same list, ``GET /v1/recommendations``): each handler called directly, as
``serving.direct`` calls it, with a validated query and no HTTP; the process CPU time (every
thread, the log writers' too) over ``--requests`` calls, divided by their number, best of
``--passes`` passes (the least disturbed by the shared machine). ``--routes-only`` skips the
rest. Prints tables and writes bench/results/serve_pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _mem() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        k = line.split(":")[0]
        if k in ("Rss", "Pss"):
            out[k.lower() + "_mb"] = int(line.split()[1]) / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=ROOT / "var" / "bench-serve-1000000x100000")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--routes-only", action="store_true", help="Only the routes' CPU per request.")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve_pipeline.json")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    from core.settings import Settings
    from search.query import SearchRequest
    from serving.services import run_search
    from serving.state import Services

    t0 = time.perf_counter()
    # the server's model_poll_seconds: the learned stage reads the registry's current ranker
    # every 2 s, not on every request (0 made that read a third of a feed request's CPU)
    services = Services.build(Settings(home=args.home, search_backend="embedded"))
    build_s = time.perf_counter() - t0
    p, r = services.pipeline, random.Random(1)
    queries = ["dress", "連衣裙", "coffee", "咖啡", "shoes", "跑步鞋", "lamp", "背包"]
    surfaces = {
        "recommend": lambda: p.recommend(user_id=f"u{r.randrange(args.users)}", n=10),
        "feed": lambda: p.feed(user_id=f"u{r.randrange(args.users)}"),
        "similar": lambda: p.similar(item_id=f"i{r.randrange(args.items)}", n=10),
        "search": lambda: run_search(
            SearchRequest(text=r.choice(queries), user_id=f"u{r.randrange(args.users)}"),
            backend=services.search, pipeline=p, rules=services.rules, catalog=services.catalog,
            settings=services.settings, debug=False, request_id="bench",
        ),
    }
    routes = _route_cpu(services, args.users, args.requests, args.passes)
    if args.routes_only:
        surfaces = {}
    results: dict[str, dict[str, float]] = {}
    for name, fn in surfaces.items():
        for _ in range(30):
            fn()
        times = []
        for _ in range(args.requests):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        times.sort()
        n = len(times)
        results[name] = {"p50_ms": 1000 * times[n // 2], "p99_ms": 1000 * times[int(n * 0.99)],
                         "mean_ms": 1000 * sum(times) / n}
    sources = {} if args.routes_only else _time_sources(p, args.users, args.requests)
    mem = _mem()
    services.close()
    t = Table(title=f"online ranking in-process: {args.home.name}; build {build_s:.1f}s, "
              f"RSS {mem['rss_mb']:.0f} MB; load {os.getloadavg()[0]:.1f}")
    for c in ("surface", "p50 ms", "p99 ms", "mean ms"):
        t.add_column(c, justify="right")
    for name, v in results.items():
        t.add_row(name, f"{v['p50_ms']:.2f}", f"{v['p99_ms']:.2f}", f"{v['mean_ms']:.2f}")
    Console().print(t)
    t = Table(title=f"route handlers: CPU ms per request, best of {args.passes} passes "
              f"of {args.requests}", min_width=60)
    for c in ("route", "CPU ms"):
        t.add_column(c, justify="right")
    for name, ms in routes.items():
        t.add_row(name, f"{ms:.3f}")
    Console().print(t)
    t = Table(title="candidate sources of recommend: CPU ms per request (minimum of 5 passes)")
    for c in ("source", "CPU ms"):
        t.add_column(c, justify="right")
    for name, ms in sources.items():
        t.add_row(name, f"{ms:.3f}")
    Console().print(t)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"home": args.home.name, "build_s": build_s, **mem,
                                    "load_avg": os.getloadavg()[0], "surfaces": results,
                                    "routes_cpu_ms": routes,
                                    "sources_cpu_ms": sources}, indent=2))


def _route_cpu(services: object, users: int, requests: int, passes: int) -> dict[str, float]:
    """CPU ms per call of the feed (page 1, page 2) and recommendations route handlers."""
    from serving.deps import Storefront
    from serving.routes.feed import FeedQuery, feed
    from serving.routes.recommendations import RecommendationsQuery, recommendations

    def run(coro: object) -> object:
        try:
            coro.send(None)  # type: ignore[attr-defined]  # the handlers never await
        except StopIteration as stop:
            return stop.value
        raise RuntimeError("a route handler awaited")

    run_id = f"{os.getpid()}-{time.time_ns()}"  # a stored list of an earlier run is not reused
    r = random.Random(3)
    page1 = [FeedQuery.model_validate({"user_id": f"u{r.randrange(users)}", "size": 10})
             for _ in range(requests)]
    recs = [RecommendationsQuery.model_validate({"user_id": f"u{r.randrange(users)}", "n": 10})
            for _ in range(requests)]
    out = {"feed page 1": float("inf"), "feed page 2": float("inf"),
           "recommendations": float("inf")}
    for k in range(passes + 1):  # the first pass warms up
        rids = [f"bench-{run_id}-{k}-{n}" for n in range(requests)]
        page2 = [FeedQuery.model_validate({"user_id": q.user_id, "size": 10, "page": 2,
                                           "request_id": rid})
                 for q, rid in zip(page1, rids, strict=True)]
        t = time.process_time()
        for q, rid in zip(page1, rids, strict=True):
            run(feed(q, Storefront(services, rid)))  # type: ignore[arg-type]
        t1 = time.process_time()
        for q, rid in zip(page2, rids, strict=True):
            run(feed(q, Storefront(services, f"{rid}-2")))  # type: ignore[arg-type]
        t2 = time.process_time()
        for n, q in enumerate(recs):
            ctx = Storefront(services, f"rec-{run_id}-{k}-{n}")  # type: ignore[arg-type]
            run(recommendations(q, ctx))
        t3 = time.process_time()
        if k:
            for name, v in (("feed page 1", t1 - t), ("feed page 2", t2 - t1),
                            ("recommendations", t3 - t2)):
                out[name] = min(out[name], 1000 * v / requests)
    return out


def _time_sources(p: object, users: int, requests: int) -> dict[str, float]:
    """CPU per request of the ``history`` and ``cf`` sources on the requests ``recommend``
    makes for random users: the requests are captured once, then each source is run over all
    of them 5 times and the fastest pass is kept (the least disturbed by the machine)."""
    from ranking import candidates as C

    captured: list[C.SourceRequest] = []
    real = C.history_list

    def capture(req: C.SourceRequest) -> C.CandList | None:
        captured.append(req)
        return real(req)

    r = random.Random(2)
    C.history_list = capture
    try:
        for _ in range(requests):
            p.recommend(user_id=f"u{r.randrange(users)}", n=10)  # type: ignore[attr-defined]
    finally:
        C.history_list = real
    out = {}
    for name, fn in (("history", C.history_list), ("cf", C.cf_list)):
        best = float("inf")
        for _ in range(5):
            t = time.process_time()
            for req in captured:
                fn(req)
            best = min(best, time.process_time() - t)
        out[name] = 1000 * best / max(1, len(captured))
    return out


if __name__ == "__main__":
    main()
