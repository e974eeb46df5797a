"""Benchmark: the HTTP API under load — p50/p99 latency and requests/s per route, and RSS.

    python bench/serve.py                                  # 1M users × 100k items × 20M events
    python bench/serve.py --users 20000 --items 5000 --events 400000 --duration 10

Steps: generate the shop into ``--home`` (kept, reused when present), train and promote the
serving models (item_knn, ALS, trending, popularity, new arrivals, bought together), build the
embedded index, start ``shoprank serve --workers N`` as a separate process, then drive each
route with ``--concurrency`` concurrent keep-alive clients for ``--duration`` seconds:
``/healthz`` (the floor: the HTTP stack alone), recommendations, feed, similar and search.
The load generator runs on the same machine (it competes for the same cores; the numbers are
a lower bound for a separate client). RSS is the sum over the server's processes after the
run. Prints a table and writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "item_knn": {"neighbors": 50},
    "als": {"factors": 64, "iterations": 10},
    "trending": {},
    "popularity": {},
    "new_arrivals": {},
    "bought_together": {},
}


def prepare(home: Path, users: int, items: int, events: int, shop: Path | None = None) -> None:
    """Generate (or copy ``shop``) into ``home/data``, train + promote with the real train job,
    build the embedded index. Each step is skipped when its output exists."""
    from data.synthetic import ShopSpec, generate

    data = home / "data"
    if not (data / "items.jsonl").exists():
        if shop is not None:
            import shutil

            print(f"copying the shop from {shop} into {data}", flush=True)
            data.mkdir(parents=True, exist_ok=True)
            for f in ("items.jsonl", "users.jsonl", "events.parquet", "truth.json"):
                if (shop / f).exists():
                    shutil.copy2(shop / f, data / f)
        else:
            print(f"generating {users} users × {items} items × {events} events into {data}", flush=True)
            generate(ShopSpec(n_users=users, n_items=items, n_events=events), data, events_format="parquet")
    from training.registry import Registry

    reg = Registry(home / "models")
    missing = [m for m in MODELS if reg.current_version(m) is None]
    if missing:
        from training.config import ModelEntry, default_config
        from training.jobs import train

        cfg = default_config(data)
        cfg.models = [ModelEntry(name=m, algorithm=m, params=MODELS[m]) for m in missing]
        cfg.train.holdout_metrics = False
        t0 = time.perf_counter()
        rep = train(cfg, home / "models", events_dir=home / "events", promote=True,
                    progress=lambda msg: print(f"  train: {msg} ({time.perf_counter() - t0:.0f}s)", flush=True))
        print(f"trained {', '.join(m.name for m in rep.models)} in {time.perf_counter() - t0:.0f}s "
              f"({', '.join(f'{k} {v:.0f}s' for k, v in rep.seconds.items())})", flush=True)
    from search.factory import open_backend
    from serving.settings import get_settings

    backend = open_backend(get_settings(home=home, search_backend="embedded"))
    try:
        if backend.count() == 0:
            from data.catalog import Catalog

            t0 = time.perf_counter()
            n = backend.rebuild(iter(Catalog.from_jsonl(data / "items.jsonl")))
            print(f"indexed {n} items in {time.perf_counter() - t0:.0f}s", flush=True)
    finally:
        backend.close()


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (from /proc)."""
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(p) for p in out]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


async def drive(base: str, make_path, duration: float, concurrency: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import httpx

    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def worker(k: int) -> None:
        nonlocal errors
        rng = random.Random(k)
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            while time.perf_counter() < stop_at:
                path = make_path(rng)
                t0 = time.perf_counter()
                r = await c.get(path)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    wall = time.perf_counter() - t0
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "rps": n / wall,
        "p50_ms": 1000 * latencies[n // 2] if n else 0.0,
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--home", type=Path, default=None, help="Default: var/bench-serve-<users>x<items>.")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=15.0, help="Seconds per route.")
    ap.add_argument("--port", type=int, default=18800)
    ap.add_argument("--shop", type=Path, default=None,
                    help="An already generated shop folder to copy instead of generating one.")
    ap.add_argument("--prepare-only", action="store_true", help="Generate, train and index; no load.")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    args = ap.parse_args(argv)
    home = (args.home or ROOT / "var" / f"bench-serve-{args.users}x{args.items}").resolve()
    prepare(home, args.users, args.items, args.events, args.shop)
    if args.prepare_only:
        return

    env = {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_SEARCH_BACKEND": "embedded", "SHOPRANK_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "shoprank"), "serve", "--port", str(args.port), "--workers", str(args.workers)],
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        import httpx

        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not become ready")
            time.sleep(0.5)
        n_users, n_items = args.users, args.items
        queries = ["dress", "連衣裙", "coffee", "咖啡", "shoes", "跑步鞋", "lamp", "背包"]
        routes = {
            "healthz": lambda r: "/healthz",
            "recommendations": lambda r: f"/v1/recommendations?user_id=u{r.randrange(n_users)}&n=10",
            "feed": lambda r: f"/v1/feed?user_id=u{r.randrange(n_users)}&size=20",
            "similar": lambda r: f"/v1/items/i{r.randrange(n_items)}/similar?n=10",
            "search": lambda r: f"/v1/search?q={r.choice(queries)}&user_id=u{r.randrange(n_users)}",
        }
        results: dict[str, dict[str, float]] = {}
        for name, make in routes.items():
            asyncio.run(drive(base, make, min(2.0, args.duration), args.concurrency))  # warm-up
            results[name] = asyncio.run(drive(base, make, args.duration, args.concurrency))
            print(name, {k: round(v, 2) for k, v in results[name].items()}, flush=True)
        rss = rss_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"serve: {args.users} users × {args.items} items, {args.workers} workers, "
              f"{args.concurrency} clients, {args.duration:.0f}s per route; server RSS {rss:.0f} MB")
    for c in ("route", "req/s", "p50 ms", "p99 ms", "errors"):
        t.add_column(c, justify="right")
    for name, r in results.items():
        t.add_row(name, f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", str(int(r["errors"])))
    Console().print(t)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "users": args.users, "items": args.items, "events": args.events, "workers": args.workers,
        "concurrency": args.concurrency, "duration_s": args.duration, "rss_mb": rss,
        "cpus": os.cpu_count(), "python": platform.python_version(), "routes": results,
    }, indent=2))


if __name__ == "__main__":
    main()
