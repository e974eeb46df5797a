"""Benchmark: the latency tail of the hot routes in one worker, its background threads running.

    python bench/tail.py                    # the home bench/serve.py prepared (1M × 100k)
    python bench/tail.py --routes recommendations,feed --seconds 20

Builds ``Services`` on a prepared home (run ``bench/serve.py --prepare-only`` first) as a
worker does, then calls the route handlers (``GET /v1/recommendations``, ``GET /v1/feed``
page 1) back to back for random users, as ``serving.direct`` calls them, for ``--seconds``
each, one thread, no HTTP. The worker's own threads run meanwhile as in the server: the
request, served-list and search logs' writers (a batch every second or 500 rows), the change
feed's poller, the model watcher. Each call's wall time and its thread's CPU time are kept;
the table gives p50, p99, p99.9 and max, and how many of the 20 slowest calls overlapped a
log write (the writers are timed as they run) or a full garbage collection, and the median CPU
a log write took on its thread, and how many times a call's thread went to sleep (mostly to
wait for the interpreter lock).

Every run starts from fresh stores: the shop as a first start imports it, nothing an earlier
run wrote (imported once, then copied; :func:`fresh_state`). Their files are read once first,
so that the disk does not decide the tail (the server of bench/serve.py reads files it has
just written). Without HTTP or a load generator
on the same two cores, the tail here is what the worker
itself adds: a call that waits while its CPU time does not grow waited for another thread.
Writes bench/results/tail.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=ROOT / "var" / "bench-serve-1000000x100000")
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--routes", default="recommendations,feed")
    ap.add_argument("--seconds", type=float, default=15.0, help="Per route.")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tail.json")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    import data.buffered_table as buffered
    from core.settings import Settings
    from serving.deps import Storefront
    from serving.routes.feed import FeedQuery, feed
    from serving.routes.recommendations import RecommendationsQuery, recommendations
    from serving.state import Services

    # the log writers' batches, timed as they run: wall start, wall end, the CPU of the
    # writing thread (the writer's own thread, or a reader that flushes first)
    writes: list[tuple[float, float, float]] = []
    flush = buffered.BufferedWriter.flush

    def timed_flush(self: Any) -> None:
        t, c = time.perf_counter(), time.thread_time()
        flush(self)
        writes.append((t, time.perf_counter(), time.thread_time() - c))

    buffered.BufferedWriter.flush = timed_flush  # type: ignore[method-assign]
    collections: list[float] = []  # start of each full collection
    gc.callbacks.append(
        lambda phase, info: collections.append(time.perf_counter())
        if phase == "start" and info["generation"] == 2 else None
    )

    fresh_state(args.home)
    # the stores' files read once, so that a call's wait is not the disk's: bench/serve.py's
    # server reads files it has just written
    warmed = 0
    for f in sorted((args.home / "state").rglob("*.sqlite")):
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                warmed += len(chunk)
    services = Services.build(Settings(home=args.home, search_backend="embedded"))
    gc.collect()
    gc.freeze()  # as the server does once started (serving.app)
    routes = {
        "recommendations": (RecommendationsQuery, recommendations, "n"),
        "feed": (FeedQuery, feed, "size"),
    }
    r = random.Random(11)
    run_id = f"{os.getpid()}-{time.time_ns()}"
    results: dict[str, dict[str, float]] = {}
    for name in args.routes.split(","):
        model, handler, size = routes[name]

        def call(k: int, model: Any = model, handler: Any = handler, size: str = size,
                 name: str = name) -> None:
            q = model.model_validate({"user_id": f"u{r.randrange(args.users)}", size: 10})
            coro = handler(q, Storefront(services, f"{name}-{run_id}-{k}"))
            try:
                coro.send(None)
            except StopIteration:
                return
            raise RuntimeError("a route handler awaited")

        for k in range(300):  # warm-up
            call(-k - 1)
        calls: list[tuple[float, float, float]] = []  # (wall s, CPU s, start)
        switches = _voluntary_switches()
        end = time.perf_counter() + args.seconds
        k = 0
        while time.perf_counter() < end:
            c, t = time.thread_time(), time.perf_counter()
            call(k)
            calls.append((time.perf_counter() - t, time.thread_time() - c, t))
            k += 1
        switches = _voluntary_switches() - switches
        walls = sorted(w for w, _, _ in calls)
        n = len(walls)
        slowest = sorted(calls, reverse=True)[:20]

        def overlaps(spans: list[tuple[float, float]], w: float, at: float) -> bool:
            return any(a < at + w and b > at for a, b in spans)

        during = [x for x in writes if x[0] >= calls[0][2]]
        spans = [(a, b) for a, b, _ in during]

        results[name] = {
            "calls": n,
            "p50_ms": 1000 * walls[n // 2],
            "p99_ms": 1000 * walls[int(n * 0.99)],
            "p999_ms": 1000 * walls[int(n * 0.999)],
            "max_ms": 1000 * walls[-1],
            "mean_cpu_ms": 1000 * statistics.fmean(c for _, c, _ in calls),
            "slowest20_waiting_ms": 1000 * statistics.median(w - c for w, c, _ in slowest),
            "slowest20_in_log_write": sum(overlaps(spans, w, at) for w, _, at in slowest),
            "slowest20_in_full_gc": sum(
                overlaps([(g, g + 0.05) for g in collections], w, at) for w, _, at in slowest),
            "log_writes": len(during),
            "waits_per_call": switches / n,
            "log_write_cpu_ms": 1000 * statistics.median(c for *_, c in during) if during else 0,
            "load_avg": os.getloadavg()[0],
        }
        writes.clear()
    services.close()

    t = Table(title=f"route handlers back to back, one thread, the worker's threads running: "
                    f"{args.home.name}, {args.seconds:.0f} s a route, {warmed / 2**20:.0f} MB of "
                    "store files read first")
    for c in ("route", "calls", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "CPU ms",
              "20 slowest: waiting ms", "in a log write", "in a full GC", "log writes",
              "a write's CPU ms", "sleeps a call", "load"):
        t.add_column(c, justify="right")
    for name, v in results.items():
        t.add_row(name, str(v["calls"]), f"{v['p50_ms']:.2f}", f"{v['p99_ms']:.2f}",
                  f"{v['p999_ms']:.2f}", f"{v['max_ms']:.2f}", f"{v['mean_cpu_ms']:.2f}",
                  f"{v['slowest20_waiting_ms']:.2f}", f"{v['slowest20_in_log_write']}/20",
                  f"{v['slowest20_in_full_gc']}/20", str(v["log_writes"]),
                  f"{v['log_write_cpu_ms']:.2f}", f"{v['waits_per_call']:.2f}",
                  f"{v['load_avg']:.1f}")
    Console(width=160).print(t)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"home": args.home.name, "seconds": args.seconds,
                                    "routes": results}, indent=2))


def fresh_state(home: Path) -> None:
    """The home's stores as a first start imports them, with nothing an earlier run wrote
    (request and served logs, feed pages, events): imported once into ``state.fresh`` (about
    3 minutes at 1M users, again when the shop files change), then copied to ``state`` before
    every run."""
    import hashlib

    from core.settings import Settings
    from serving.storage import check_stores

    shop = sorted((str(f.relative_to(home)), f.stat().st_size, f.stat().st_mtime_ns)
                  for f in (home / "data").rglob("*") if f.is_file())
    key = hashlib.sha256(json.dumps(shop).encode()).hexdigest()
    snapshot = home / "state.fresh"
    if (snapshot / "shop.key").exists() and (snapshot / "shop.key").read_text() == key:
        shutil.rmtree(home / "state", ignore_errors=True)
    else:
        for leftover in ("state", "events", "state.fresh"):
            shutil.rmtree(home / leftover, ignore_errors=True)
        t = time.perf_counter()
        check_stores(Settings(home=home, search_backend="embedded"))
        shutil.copytree(home / "state", snapshot)
        (snapshot / "shop.key").write_text(key)
        print(f"imported the shop into fresh stores in {time.perf_counter() - t:.0f} s")
        shutil.rmtree(home / "state")
    shutil.rmtree(home / "events", ignore_errors=True)
    shutil.copytree(snapshot, home / "state", ignore=shutil.ignore_patterns("shop.key"))


def _voluntary_switches() -> int:
    """How many times this thread has gone to sleep (``voluntary_ctxt_switches``): in a call
    that does no I/O of its own beyond cached reads, mostly waits for the interpreter lock."""
    status = Path(f"/proc/self/task/{threading.get_native_id()}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines()
                    if ln.startswith("voluntary_ctxt_switches")))


if __name__ == "__main__":
    main()
