"""Benchmark: the HTTP API under load — p50/p99 latency and requests/s per route, and memory.

    python bench/serve.py --shop /path/to/generated/shop     # 1M users × 100k items × 20M events
    python bench/serve.py                                     # generates that shop first (~4 min)
    python bench/serve.py --users 20000 --items 5000 --events 400000 --duration 10

Steps: generate the shop into ``--home/data`` (or copy ``--shop``; kept and reused), train and
promote the serving models with the real train job (item_knn, ALS, trending, popularity, new
arrivals, bought together), build the embedded index, start ``shoprank serve --workers N`` as
its own process, then load each route for ``--duration`` seconds with ``wrk`` (C, one thread,
``--concurrency`` keep-alive connections, a Lua script for random users/items/queries):
``/healthz`` (the floor: the HTTP stack alone), recommendations, recommendations in a top
category, recommendations for new shoppers (ids longer than any known one: unknown users,
trending), feed, similar, search,
and search for new shoppers;
recommendations and the feed (the routes with aims) ``--repeat`` times in all (medians),
then healthz and recommendations again with ``--latency-concurrency`` connections (about one
request in flight per worker: the service time, where 8 connections measure mostly queueing),
and recommendations paced at about ``--paced-rate`` requests/s (``--paced-connections``
connections with random think times: the p99 at that rate, below saturation).

The server runs uvicorn's workers over the embedded stores (``--pin-workers``: each on a CPU
of its own, ``shoprank serve --pin-workers``), from a fresh home (the stores,
event log and derived arrays of an earlier run are removed; the first start imports the shop
files, which the start-up time includes). The client shares the machine:
the CPU seconds of the server and of wrk are measured per route and reported
(``server_cpu`` / ``client_cpu``: cores busy on average; ``worker_cpu_max`` /
``worker_cpu_min``: the busiest and the idlest worker, equal when the load is spread evenly),
with the load average before each route. Before each run the bench waits until the workers
hold no connection of the previous one; during it, the connections each worker holds are
sampled every 0.25 s (``even_split``: the share of samples where they differ by at most one).
Memory: PSS (shared pages split between processes: the honest total), the largest process's
RSS, and RSS summed over the server's processes (counts shared pages once per process).
Prints a table and
writes bench/results/serve.json. Needs ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROUTES = ("healthz", "recommendations", "in_category", "new_shoppers", "feed", "similar",
          "search", "search_new_shoppers")
AIMED = ("recommendations", "feed")
"""Routes whose latency issue 16 sets aims for: measured ``--repeat`` times."""
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
            print(
                f"generating {users} users × {items} items × {events} events into {data}",
                flush=True,
            )
            generate(
                ShopSpec(n_users=users, n_items=items, n_events=events),
                data,
                events_format="parquet",
            )
    from models.registry import Registry

    reg = Registry(home / "models")
    missing = [m for m in MODELS if reg.current_version(m) is None]
    if missing:
        from training.config import ModelEntry, default_config
        from training.jobs import train

        cfg = default_config(data)
        cfg.models = [ModelEntry(name=m, algorithm=m, params=MODELS[m]) for m in missing]
        cfg.train.holdout_metrics = False
        t0 = time.perf_counter()
        rep = train(
            cfg,
            home / "models",
            events_dir=home / "events",
            promote=True,
            progress=lambda msg: print(
                f"  train: {msg} ({time.perf_counter() - t0:.0f}s)", flush=True
            ),
        )
        print(f"trained {', '.join(m.name for m in rep.models)} in {time.perf_counter() - t0:.0f}s "
              f"({', '.join(f'{k} {v:.0f}s' for k, v in rep.seconds.items())})", flush=True)
    from core.settings import get_settings
    from search.factory import open_backend

    backend = open_backend(get_settings(home=home, search_backend="embedded"))
    try:
        try:
            fresh = backend.count() > 0 and backend.health()
        except Exception:  # e.g. an index written by an older schema
            fresh = False
        if not fresh:
            from data.catalog import Catalog

            t0 = time.perf_counter()
            n = backend.rebuild(iter(Catalog.from_jsonl(data / "items.jsonl")))
            print(f"indexed {n} items in {time.perf_counter() - t0:.0f}s", flush=True)
    finally:
        backend.close()


def _tree(pid: int) -> list[int]:
    pids = [pid]
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return pids + [int(p) for p in out]


def memory_mb(pid: int) -> dict[str, float]:
    """Memory of a process and its children, in MB (from /proc): ``pss_mb``, what they use
    together (a page shared by n processes counts 1/n in each); ``rss_mb``, the sum of their
    RSS (a shared page counts once per process that maps it: the model files every worker
    maps, numba's code); ``rss_max_mb``, the largest one process's RSS."""
    total = {"rss_mb": 0.0, "pss_mb": 0.0, "rss_max_mb": 0.0}
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) / 1024
                    total["rss_mb"] += rss
                    total["rss_max_mb"] = max(total["rss_max_mb"], rss)
                elif line.startswith("Pss:"):
                    total["pss_mb"] += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def smaps_by_kind(pid: int, kind_of: Callable[[str], str], kinds: Sequence[str],
                  fields: tuple[str, ...]) -> dict[str, float]:
    """Memory of a process and its children summed by kind of mapping, in MB, from
    ``/proc/<pid>/smaps``: ``kind_of(path)`` names each mapping's kind (``path`` is "" for an
    anonymous mapping), ``fields`` are the lines summed (``("Pss:",)``, or
    ``("Private_Clean:", "Private_Dirty:")``)."""
    out = dict.fromkeys(kinds, 0.0)
    for p in _tree(pid):
        kind = kinds[0]
        try:
            text = Path(f"/proc/{p}/smaps").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            head = line.split(maxsplit=6)
            if len(head) >= 5 and "-" in head[0] and ":" in head[3]:  # a mapping's first line
                path = head[5] if len(head) > 5 else ""
                kind = kind_of("" if path.startswith("[") else path)
            elif line.startswith(fields):
                out[kind] += int(line.split()[1]) / 1024
    return out


def pss_by_kind(pid: int, home: Path) -> dict[str, float]:
    """PSS by what backs it: ``heap`` (malloc's heap and anonymous mappings), ``models``
    (files under the home's model registry and catalog: memory-mapped, their touched pages
    shared by the workers), ``files`` (other files under the home), ``code`` (libraries and
    everything else)."""
    root = str(home.resolve())

    def kind_of(path: str) -> str:
        if not path:
            return "heap"
        if path.startswith(root):
            return "models" if ("/models/" in path or "catalog" in path) else "files"
        return "code"

    return smaps_by_kind(pid, kind_of, ("heap", "models", "files", "code"), ("Pss:",))


def cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU seconds so far of a process and of each of its children."""
    tick = os.sysconf("SC_CLK_TCK")
    got: dict[int, float] = {}
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            got[p] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError):
            continue
    return got


def connections_by_process(port: int) -> dict[int, int]:
    """How many TCP sockets on local ``port`` (not listening) each process holds, from /proc."""
    owner: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fds = list((d / "fd").iterdir())
        except OSError:  # ended meanwhile, or not ours
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                owner[int(target[8:-1])] = int(d.name)
    got: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            listening = f[3] == "0A"
            if not listening and int(f[1].rsplit(":", 1)[1], 16) == port and int(f[9]) in owner:
                got[owner[int(f[9])]] = got.get(owner[int(f[9])], 0) + 1
    return got


def settle(server_pid: int, port: int, timeout: float = 10.0) -> None:
    """Wait until the server's workers hold no connection on ``port`` (the previous run's
    are closed and reported), so the next run's connections are placed by true counts."""
    workers = set(_tree(server_pid)) - {server_pid}
    deadline = time.monotonic() + timeout
    while sum(n for p, n in connections_by_process(port).items() if p in workers):
        if time.monotonic() > deadline:
            print(f"warning: the workers still hold connections after {timeout:.0f}s", flush=True)
            return
        time.sleep(0.05)


def run_wrk(base: str, route: str, duration: float, concurrency: int, users: int, items: int,
            server_pid: int, think_ms: float = 0.0, workers: int = 2) -> dict[str, float]:
    """One wrk run; latency percentiles from wrk, CPU of server and client measured around it.
    ``think_ms``: each connection waits a random time with this mean before each request."""
    import resource

    env = {**os.environ, "ROUTE": route, "N_USERS": str(users), "N_ITEMS": str(items),
           "THINK_MS": f"{think_ms:.3f}"}
    settle(server_pid, int(base.rsplit(":", 1)[1]))
    load = os.getloadavg()[0]
    before_srv = cpu_seconds(server_pid)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    splits = SplitSampler(server_pid, int(base.rsplit(":", 1)[1]), workers)
    t0 = time.perf_counter()
    with splits:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{duration:.0f}s", "--timeout", "10s",
             "-s", str(ROOT / "bench" / "serve.lua"), base],
            env=env, capture_output=True, text=True, check=True,
        ).stdout
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_srv = cpu_seconds(server_pid)
    per_proc = sorted((after_srv[p] - before_srv.get(p, 0.0) for p in after_srv), reverse=True)
    busy = [c / wall for c in per_proc[:workers]]
    srv = sum(after_srv.values()) - sum(before_srv.values())
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    w = json.loads(line[len("WRKJSON "):])
    secs = w["duration_us"] / 1e6
    return {
        "requests": w["requests"],
        "errors": w["non2xx"] + w["socket_errors"],
        "rps": w["requests"] / secs,
        "p50_ms": w["p50_us"] / 1000,
        "p90_ms": w["p90_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "max_ms": w["max_us"] / 1000,
        "server_cpu": srv / wall,
        # the busiest and the least busy worker: equal when connections are spread evenly
        "worker_cpu_max": busy[0] if busy else 0.0,
        "worker_cpu_min": busy[-1] if busy else 0.0,
        "client_cpu": (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall,
        "load_avg_before": load,
        "even_split": splits.even_share(),
    }


class SplitSampler:
    """How the wrk connections are split over the workers, sampled every ``every`` seconds
    while the run lasts: ``even_share()`` is the share of samples where the workers' counts
    differ by at most one."""

    def __init__(self, server_pid: int, port: int, workers: int, every: float = 0.25) -> None:
        self.pids = set(_tree(server_pid)) - {server_pid}
        self.port, self.workers, self.every = port, workers, every
        self.samples: list[tuple[int, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SplitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            got = connections_by_process(self.port)
            counts = sorted((got.get(p, 0) for p in self.pids), reverse=True)[: self.workers]
            if sum(counts) >= self.workers:  # the run's connections are open
                self.samples.append(tuple(counts))

    def even_share(self) -> float:
        if not self.samples:
            return float("nan")
        return sum(c[0] - c[-1] <= 1 for c in self.samples) / len(self.samples)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument(
        "--home", type=Path, default=None, help="Default: var/bench-serve-<users>x<items>."
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8, help="wrk connections.")
    ap.add_argument("--duration", type=float, default=15.0, help="Seconds per route.")
    ap.add_argument("--latency-concurrency", type=int, default=2,
                    help="Also load healthz and recommendations with this many connections "
                    "(default 2: one request in flight per worker; 0: skip).")
    ap.add_argument("--paced-rate", type=float, default=1000.0,
                    help="Also load recommendations at about this many requests/s (0: skip): "
                    "--paced-connections connections, each waiting a random think time before "
                    "each request, so latency is measured below saturation.")
    ap.add_argument("--paced-connections", type=int, default=64)
    ap.add_argument("--port", type=int, default=18800)
    ap.add_argument("--routes", type=lambda v: v.split(","), default=list(ROUTES),
                    help="Comma-separated routes to load (default: all of "
                    f"{','.join(ROUTES)}).")
    ap.add_argument("--repeat", type=int, default=3,
                    help="Measure recommendations and the feed this many times (medians).")
    ap.add_argument("--keep-alive-requests", type=int, default=None,
                    help="SHOPRANK_KEEP_ALIVE_REQUESTS for the server (default: the setting's "
                    "default; 0: connections are never closed by the server).")
    ap.add_argument("--pin-workers", action="store_true",
                    help="shoprank serve --pin-workers: one CPU per worker (the client then "
                    "shares a core with a worker).")
    ap.add_argument("--shop", type=Path, default=None,
                    help="An already generated shop folder to copy instead of generating one.")
    ap.add_argument(
        "--prepare-only", action="store_true", help="Generate, train and index; no load."
    )
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.routes) - set(ROUTES))
    if unknown:
        ap.error(f"--routes: unknown {', '.join(unknown)}")
    lc_run = args.latency_concurrency and args.latency_concurrency != args.concurrency
    if args.paced_rate > 0 and not lc_run and "recommendations" not in args.routes:
        ap.error("--paced-rate needs recommendations in --routes (or --latency-concurrency)")
    home = (args.home or ROOT / "var" / f"bench-serve-{args.users}x{args.items}").resolve()
    prepare(home, args.users, args.items, args.events, args.shop)
    if args.prepare_only:
        return

    if shutil.which("wrk") is None:
        raise SystemExit("bench/serve.py needs wrk (a C load generator): apt-get install wrk")
    env = {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_SEARCH_BACKEND": "embedded",
           "SHOPRANK_LOG_LEVEL": "WARNING"}
    keep_alive = (Settings.model_fields["keep_alive_requests"].default
                  if args.keep_alive_requests is None else args.keep_alive_requests)
    env["SHOPRANK_KEEP_ALIVE_REQUESTS"] = str(keep_alive)
    # a fresh home: no state left by an earlier run (the stores, the request log, the event
    # log, derived arrays); the server's first start imports the shop files into the stores
    for leftover in ("state", "events"):
        shutil.rmtree(home / leftover, ignore_errors=True)
    t_start = time.perf_counter()
    server = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "shoprank"),
            "serve",
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
            *(["--pin-workers"] if args.pin_workers else []),
        ],
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        import httpx

        deadline = time.monotonic() + 900
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not become ready")
            time.sleep(0.5)
        startup_s = time.perf_counter() - t_start
        ready_mem = {**memory_mb(server.pid), "pss_by_kind_mb": pss_by_kind(server.pid, home)}
        print(f"server ready in {startup_s:.1f}s; memory {ready_mem}", flush=True)
        results: dict[str, dict[str, float]] = {}
        for name in args.routes:
            run_wrk(base, name, min(3.0, args.duration), args.concurrency, args.users, args.items,
                    server.pid, workers=args.workers)  # warm-up (page cache, caches)
            results[name] = run_wrk(base, name, args.duration, args.concurrency, args.users,
                                    args.items, server.pid, workers=args.workers)
            print(name, {k: round(v, 2) for k, v in results[name].items()}, flush=True)
        # The routes with aims, measured --repeat times in all (alternating); the table and
        # the JSON give the median of each column, the JSON also every run
        runs = {name: [results[name]] for name in AIMED if name in results}
        for _ in range(args.repeat - 1):
            for name in runs:
                runs[name].append(run_wrk(base, name, args.duration, args.concurrency,
                                          args.users, args.items, server.pid,
                                          workers=args.workers))
                print(name, "again", {k: round(v, 2) for k, v in runs[name][-1].items()},
                      flush=True)
        for name, rs in runs.items():
            results[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            results[name]["errors"] = sum(r["errors"] for r in rs)  # every run's, not a median
        # Closed-loop load: latency ≈ connections ÷ throughput, so at --concurrency 8 the p99
        # is mostly queueing. One request in flight per worker shows the service time.
        lc = args.latency_concurrency
        if lc and lc != args.concurrency:
            for name in ("healthz", "recommendations"):
                key = f"{name} @{lc}"
                results[key] = run_wrk(
                    base,
                    name,
                    args.duration,
                    lc,
                    args.users,
                    args.items,
                    server.pid,
                    workers=args.workers,
                )
                print(key, {k: round(v, 2) for k, v in results[key].items()}, flush=True)
        # Paced load: p99 at a given rate rather than at saturation. Each connection sends
        # about one request per (think + latency); the think time subtracts the measured
        # median latency so the offered rate is about --paced-rate (the table shows the rate
        # actually served).
        if args.paced_rate > 0:
            conns = args.paced_connections
            lat_key = (
                f"recommendations @{lc}" if lc and lc != args.concurrency else "recommendations"
            )
            think = max(0.0, conns / args.paced_rate * 1000 - results[lat_key]["p50_ms"])
            key = f"recommendations paced {args.paced_rate:.0f}/s"
            results[key] = run_wrk(
                base,
                "recommendations",
                args.duration,
                conns,
                args.users,
                args.items,
                server.pid,
                think_ms=think,
                workers=args.workers,
            )
            results[key]["think_ms"] = think
            print(key, {k: round(v, 2) for k, v in results[key].items()}, flush=True)
        mem = memory_mb(server.pid)
        by_kind = pss_by_kind(server.pid, home)
        print("PSS by kind after the load (MB):", {k: round(v) for k, v in by_kind.items()})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    from rich.console import Console
    from rich.table import Table

    pinned = " pinned" if args.pin_workers else ""
    t = Table(title=f"serve: {args.users:,} users × {args.items:,} items, {args.workers} workers"
              f"{pinned}, wrk {args.concurrency} connections, {args.duration:.0f}s per route; "
              f"memory: PSS "
              f"{mem['pss_mb']:.0f} MB, largest process RSS {mem['rss_max_mb']:.0f} MB, RSS summed "
              f"over processes {mem['rss_mb']:.0f} MB; ready in {startup_s:.0f}s")
    for c in (
        "route",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server cores",
        "busiest / idlest worker",
        "even split",
        "wrk cores",
        "load before",
    ):
        t.add_column(c, justify="right")
    for name, r in results.items():
        t.add_row(
            name,
            f"{r['rps']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(int(r["errors"])),
            f"{r['server_cpu']:.2f}",
            f"{r['worker_cpu_max']:.2f} / {r['worker_cpu_min']:.2f}",
            f"{r['even_split']:.0%}",
            f"{r['client_cpu']:.2f}",
            f"{r['load_avg_before']:.1f}",
        )
    Console(width=150).print(t)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "users": args.users, "items": args.items, "events": args.events, "workers": args.workers,
        "pin_workers": args.pin_workers, "concurrency": args.concurrency,
        "duration_s": args.duration, "client": "wrk -t1",
        "keep_alive_requests": keep_alive, "repeat": args.repeat, "runs": runs,
        "rss_mb": mem["rss_mb"], "rss_max_mb": mem["rss_max_mb"], "pss_mb": mem["pss_mb"],
        "startup_s": startup_s, "pss_by_kind_mb": by_kind, "ready_memory": ready_mem,
        "cpus": os.cpu_count(), "python": platform.python_version(), "routes": results,
        "command": "python bench/serve.py " + " ".join(sys.argv[1:]),
    }, indent=2))


if __name__ == "__main__":
    main()
