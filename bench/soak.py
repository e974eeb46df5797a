"""Soak: memory of a 2-worker server under a steady mixed load, sampled over time.

    python bench/soak.py                            # 10 min at 200 req/s, 20k users × 5k items
    python bench/soak.py --duration 120 --rate 100  # a quick look
    python bench/soak.py --shared                   # over PostgreSQL + Redis of its own

Steps: a fresh home (``--home`` is deleted first unless ``--keep``), generate the shop, train
and promote the serving models, build the embedded index (``bench/serve.py``'s ``prepare``),
start ``shoprank serve --workers 2`` (with ``--shared``: over a PostgreSQL and a Redis the
bench starts in temporary folders, ``scripts/postgres`` / ``scripts/redis``; their memory is
not the server's and is not counted), then send a mixed load at ``--rate`` requests/s from
this process (asyncio + httpx, ``--concurrency`` connections): recommendations, feed page 1
and page 2, similar items, search and batches of events (views and clicks echoing the served
request ids), with random users, items and queries. PSS of the server (its processes
together, shared pages split) is sampled every ``--sample-seconds`` from the first request.

Reports the PSS at the end of the warm-up (``--warmup`` seconds), at the end, and the growth
per minute after warm-up and over the second half of the run (least-squares slopes over the
samples; bounded caches that are still filling show in the first and not the second), with
the requests served and any errors. Prints a table, writes ``bench/results/soak.json`` and a
PNG of PSS over time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import serve as serve_bench  # noqa: E402  (bench/serve.py: prepare, memory_mb)
import shared as shared_bench  # noqa: E402  (bench/shared.py: start_server, stop_server)

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["連衣裙", "dress", "手機", "耳機", "跑鞋", "帳篷", "咖啡", "jacket", "背包", "玩具"]


def private_mb(pid: int) -> float:
    """Private memory (USS) of a process and its children, in MB: pages no other process
    maps. Unlike PSS it does not move when an unrelated process maps the same libraries or
    files, so its growth is the server's own."""
    total = 0.0
    for p in serve_bench._tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def private_by_kind(pid: int) -> dict[str, float]:
    """Private memory of the server's processes by what backs it, in MB: ``heap`` (malloc's
    heap and anonymous mappings: Python objects, numpy arrays, native libraries'
    allocations), ``sqlite`` (the store files and their ``-shm`` indexes mapped), ``models``
    (memory-mapped model and catalog files), ``code`` (libraries and other files). Which kind
    grows says where to look."""

    def kind_of(path: str) -> str:
        if not path:
            return "heap"
        if ".sqlite" in path:
            return "sqlite"
        if "/models/" in path or "/catalog" in path or path.endswith(".npy"):
            return "models"
        return "code"

    return serve_bench.smaps_by_kind(pid, kind_of, ("heap", "sqlite", "models", "code"),
                                     ("Private_Clean:", "Private_Dirty:"))


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if den == 0 else 60 * sum((t - mx) * (v - my) for t, v in points) / den


def next_request(rng: random.Random, users: int, items: int,
                 served: list[str]) -> tuple[str, str, dict]:
    """One request of the mix: recommendations 30 %, feed 15 %, similar 10 %, search 20 %,
    a batch of 5 events 25 % (views and clicks echoing a served request id)."""
    roll = rng.random()
    if roll < 0.3:
        return ("GET", "/v1/recommendations", {"user_id": f"u{rng.randrange(users)}", "n": 10})
    if roll < 0.45:
        return ("GET", "/v1/feed", {"user_id": f"u{rng.randrange(users)}", "size": 10})
    if roll < 0.55:
        return ("GET", f"/v1/items/i{rng.randrange(items)}/similar", {"n": 10})
    if roll < 0.75:
        return ("GET", "/v1/search",
                {"q": rng.choice(QUERIES), "user_id": f"u{rng.randrange(users)}"})
    rid = rng.choice(served) if served else None
    now = datetime.now(UTC).isoformat()
    events = [{"event_id": uuid.uuid4().hex, "user_id": f"u{rng.randrange(users)}",
               "item_id": f"i{rng.randrange(items)}",
               "type": rng.choice(["view", "view", "click"]), "timestamp": now,
               "context": {"request_id": rid} if rid else {}} for _ in range(5)]
    return ("POST", "/v1/events", {"events": events})


async def load(base: str, rate: float, duration: float, concurrency: int, users: int,
               items: int, counts: dict[str, int], errors: list[str]) -> None:
    """Send the mix at ``rate`` for ``duration`` seconds; counts requests and errors, and keeps
    the first few errors (what was asked, the status and the start of the answer)."""
    rng = random.Random(7)
    queue: asyncio.Queue[tuple[str, str, dict] | None] = asyncio.Queue(maxsize=concurrency * 4)
    served: list[str] = []

    async def producer() -> None:
        start = time.monotonic()
        k = 0
        while time.monotonic() - start < duration:
            k += 1
            await queue.put(next_request(rng, users, items, served))
            delay = start + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        for _ in range(concurrency):
            await queue.put(None)

    async def worker(client: httpx.AsyncClient) -> None:
        while (req := await queue.get()) is not None:
            method, path, body = req
            what = ""
            try:
                if method == "GET":
                    r = await client.get(path, params=body)
                else:
                    r = await client.post(path, json=body)
                ok = r.status_code < 400
                what = f"{method} {path} {r.status_code} {r.text[:200]}"
                if ok and path == "/v1/feed" and r.json().get("has_more"):
                    page2 = await client.get(path, params={**body, "page": 2,
                                                           "request_id": r.json()["request_id"]})
                    counts["requests"] += 1
                    ok = page2.status_code < 400
                    what = f"GET {path} page 2 {page2.status_code} {page2.text[:200]}"
                if ok and method == "GET" and len(served) < 10_000:
                    served.append(r.json().get("request_id", ""))
            except httpx.HTTPError as exc:
                ok = False
                what = f"{method} {path}: {type(exc).__name__} {exc}"
            counts["requests"] += 1
            counts["errors"] += 0 if ok else 1
            if not ok and len(errors) < 5:
                errors.append(what)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        await asyncio.gather(producer(), *(worker(client) for _ in range(concurrency)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=5_000)
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--warmup", type=float, default=120.0)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--sample-seconds", type=float, default=10.0)
    ap.add_argument("--port", type=int, default=18900)
    ap.add_argument("--home", type=Path, default=ROOT / "var" / "bench-soak")
    ap.add_argument("--keep", action="store_true", help="Reuse --home instead of starting fresh.")
    ap.add_argument("--shared", action="store_true",
                    help="Serve over a PostgreSQL and a Redis of the bench's own.")
    ap.add_argument("--results", type=Path, default=None,
                    help="Default: bench/results/soak.json (soak-shared.json with --shared).")
    args = ap.parse_args(argv)
    args.results = args.results or ROOT / "bench" / "results" / (
        "soak-shared.json" if args.shared else "soak.json")
    home = args.home.resolve()
    if home.exists() and not args.keep:
        shutil.rmtree(home)
    serve_bench.prepare(home, args.users, args.items, args.events)
    env = {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_SEARCH_BACKEND": "embedded",
           "SHOPRANK_LOG_LEVEL": "WARNING"}
    servers: list[tuple[str, Path]] = []
    if args.shared:
        stores_dir = Path(tempfile.mkdtemp(prefix="shoprank-soak-"))
        stores_dir.chmod(0o755)  # the servers run as their Debian users when started as root
        for script in ("postgres", "redis"):
            url, _ = shared_bench.start_server(script, stores_dir / script)
            servers.append((script, stores_dir / script))
            env["SHOPRANK_DATABASE_URL" if script == "postgres" else "SHOPRANK_REDIS_URL"] = url
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "shoprank"), "serve", "--port", str(args.port),
         "--workers", "2"], env=env, start_new_session=True)
    base = f"http://127.0.0.1:{args.port}"
    samples: list[tuple[float, float]] = []
    private: list[tuple[float, float]] = []
    by_kind: list[tuple[float, dict[str, float]]] = []
    counts = {"requests": 0, "errors": 0}
    errors: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not become ready")
            time.sleep(0.5)
        ready_pss = serve_bench.memory_mb(server.pid)["pss_mb"]
        t0 = time.monotonic()

        def sample_kinds(t: float) -> None:
            """Private memory by kind, and its total (one read of smaps for both)."""
            kinds = private_by_kind(server.pid)
            by_kind.append((t, kinds))
            private.append((t, sum(kinds.values())))

        async def run() -> None:
            task = asyncio.create_task(load(base, args.rate, args.duration, args.concurrency,
                                            args.users, args.items, counts, errors))
            while not task.done():
                pss = serve_bench.memory_mb(server.pid)["pss_mb"]
                samples.append((time.monotonic() - t0, pss))
                sample_kinds(samples[-1][0])
                print(f"  {samples[-1][0]:6.0f} s  PSS {pss:8.1f} MB  "
                      f"private {private[-1][1]:8.1f} MB  requests "
                      f"{counts['requests']:,}  errors {counts['errors']}", flush=True)
                await asyncio.wait([task], timeout=args.sample_seconds)
            await task
            samples.append((time.monotonic() - t0, serve_bench.memory_mb(server.pid)["pss_mb"]))
            sample_kinds(samples[-1][0])

        asyncio.run(run())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        for script, folder in servers:
            shared_bench.stop_server(script, folder)
    after = [(t, v) for t, v in samples if t >= args.warmup]
    warm = after[0][1] if after else samples[-1][1]
    result = {
        "command": "python bench/soak.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "users": args.users, "items": args.items, "rate": args.rate,
        "stores": "shared (PostgreSQL + Redis)" if args.shared else "embedded",
        "duration_s": args.duration, "warmup_s": args.warmup,
        "requests": counts["requests"], "errors": counts["errors"], "first_errors": errors,
        "pss_ready_mb": round(ready_pss, 1), "pss_after_warmup_mb": round(warm, 1),
        "pss_end_mb": round(samples[-1][1], 1),
        "growth_after_warmup_mb_per_min": round(slope_per_minute(after), 2),
        "growth_second_half_mb_per_min": round(
            slope_per_minute([(t, v) for t, v in samples if t >= args.duration / 2]), 2),
        "private_end_mb": round(private[-1][1], 1),
        "private_growth_after_warmup_mb_per_min": round(
            slope_per_minute([(t, v) for t, v in private if t >= args.warmup]), 2),
        "private_growth_second_half_mb_per_min": round(
            slope_per_minute([(t, v) for t, v in private if t >= args.duration / 2]), 2),
        "private_growth_after_warmup_by_kind_mb_per_min": {
            kind: round(slope_per_minute(
                [(t, v[kind]) for t, v in by_kind if t >= args.warmup]), 2)
            for kind in by_kind[-1][1]},
        "private_end_by_kind_mb": {k: round(v, 1) for k, v in by_kind[-1][1].items()},
        "load_avg_end": round(os.getloadavg()[0], 1),
        "samples": [(round(t, 1), round(v, 1)) for t, v in samples],
        "private_samples": [(round(t, 1), round(v, 1)) for t, v in private],
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2))
    print(f"\n{'requests':<34}{result['requests']:>12,}\n{'errors':<34}{result['errors']:>12,}")
    for key in ("pss_ready_mb", "pss_after_warmup_mb", "pss_end_mb",
                "growth_after_warmup_mb_per_min", "growth_second_half_mb_per_min",
                "private_end_mb", "private_growth_after_warmup_mb_per_min",
                "private_growth_second_half_mb_per_min", "load_avg_end"):
        print(f"{key:<34}{result[key]:>12}")
    for kind, rate in result["private_growth_after_warmup_by_kind_mb_per_min"].items():
        print(f"{'  private growth, ' + kind:<34}{rate:>12}  (end "
              f"{result['private_end_by_kind_mb'][kind]} MB)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([t / 60 for t, _ in samples], [v for _, v in samples], marker=".", label="PSS")
    ax.plot([t / 60 for t, _ in private], [v for _, v in private], marker=".",
            label="private (USS)")
    ax.axvline(args.warmup / 60, color="grey", linestyle="--", label="end of warm-up")
    ax.set_xlabel("minutes under load")
    ax.set_ylabel("server memory (MB)")
    achieved = result["requests"] / max(args.duration, 1.0)  # type: ignore[operator]
    ax.set_title(f"soak, {result['stores']} stores, 2 workers: {achieved:.0f} req/s mixed load\n"
                 f"(asked {args.rate:.0f}); after warm-up PSS "
                 f"{result['growth_after_warmup_mb_per_min']} MB/min, private "
                 f"{result['private_growth_after_warmup_mb_per_min']} MB/min", fontsize=10)
    ax.legend()
    png = args.results.with_suffix(".png")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    print(f"wrote {args.results} and {png}")


if __name__ == "__main__":
    main()
