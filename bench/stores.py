"""Benchmark: latency and CPU per store operation, embedded (SQLite, files) vs shared
(PostgreSQL + Redis) on the same machine.

    python bench/stores.py                       # starts its own PostgreSQL and Redis
    python bench/stores.py --rounds 3 --ops 100  # quicker
    python bench/stores.py --database-url postgresql://… --redis-url redis://…   # existing servers

Operations, each timed one call at a time from one thread: append a batch of 100 new events
(durable before it returns), read a shopper's recent history, read history and purchases in
one call (``profile``: one round trip to Redis), get a feed page (a 5 KB body),
log a served list (20 items), record one view in shopper state. Each operation runs
``--rounds`` rounds of ``--ops`` calls on a fresh home and fresh servers; reported are the median
latency over all calls, the 99th percentile, and CPU per call (median over rounds): the
client process's, and for the shared stores also the servers' (PostgreSQL's processes,
Redis; read from /proc, so only for servers this script started). Prints a table and writes
bench/results/stores.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.models import Event  # noqa: E402  (after the sys.path line)
from stores import ServedList, Stores, open_stores  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def start_server(script: str, prefix: str, folder: Path) -> str:
    env = dict(os.environ, **{f"{prefix}_DIR": str(folder),
                              f"{prefix}_WATCH_PID": str(os.getpid())})
    env.pop(f"{prefix}_PORT", None)
    out = subprocess.run([str(ROOT / "scripts" / script), "start"], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def stop_server(script: str, prefix: str, folder: Path) -> None:
    env = dict(os.environ, **{f"{prefix}_DIR": str(folder)})
    subprocess.run([str(ROOT / "scripts" / script), "stop"], env=env, check=False,
                   capture_output=True)


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a process and its reaped children (utime, stime, cutime, cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def server_pids(pg_dir: Path | None, redis_dir: Path | None) -> list[int]:
    """The postmaster, its children (the backends) and redis-server."""
    pids: list[int] = []
    if pg_dir is not None:
        master = int((pg_dir / "data" / "postmaster.pid").read_text().split()[0])
        pids.append(master)
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(stat.parent.name))
            except (OSError, ValueError, IndexError):
                continue
    if redis_dir is not None:
        pids.append(int((redis_dir / "redis.pid").read_text().strip()))
    return pids


def server_cpu(pg_dir: Path | None, redis_dir: Path | None) -> float:
    return sum(_proc_cpu(p) for p in server_pids(pg_dir, redis_dir))


def operations(s: Stores) -> dict[str, Callable[[int], None]]:
    """Each operation as a call taking the call's number; seeds what the reads read."""
    now = datetime.now(UTC)
    users = 1000
    for u in range(0, users, 50):
        s.shopper.record([
            Event(event_id=f"seed-{u + k}-{n}", user_id=f"u{u + k}", item_id=f"i{n * 7 % 5000}",
                  type="view", timestamp=now - timedelta(minutes=n))
            for k in range(50) for n in range(50)
        ])
    body = os.urandom(5000)
    for n in range(1000):
        s.feed_pages.put(f"req{n}|u{n}|", body, user_id=f"u{n}")
    run = uuid.uuid4().hex[:8]
    items = tuple(f"i{k}" for k in range(20))

    def append_100(i: int) -> None:
        s.events.append([
            Event(event_id=f"{run}-{i}-{k}", user_id=f"u{k}", item_id=f"i{(i + k) % 5000}",
                  type="view", timestamp=now, context={"request_id": f"r{i}", "position": k})
            for k in range(100)
        ])

    def recent(i: int) -> None:
        assert len(s.shopper.recent(f"u{i % users}")) == 50

    def profile(i: int) -> None:
        assert len(s.shopper.profile(f"u{i % users}").recent) == 50

    def feed_page(i: int) -> None:
        assert s.feed_pages.get(f"req{i % 1000}|u{i % 1000}|") is not None

    def log_served(i: int) -> None:
        s.requests.record([ServedList(f"{run}-{i}", now, "feed", f"u{i % users}",
                                      "exp1", "b", None, None, items)])

    def record_view(i: int) -> None:
        s.shopper.record([Event(event_id=f"{run}-v{i}", user_id=f"u{i % users}",
                                item_id=f"i{i % 5000}", type="view", timestamp=now)])

    return {
        "append 100 events": append_100,
        "read recent history": recent,
        "read history + purchases (profile)": profile,
        "get a feed page": feed_page,
        "log a served list": log_served,
        "record a view (shopper state)": record_view,
    }


def measure(
    s: Stores, rounds: int, ops: int, pg_dir: Path | None, redis_dir: Path | None
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, op in operations(s).items():
        for i in range(20):  # warm connections and caches
            op(10**6 + i)
        lat: list[float] = []
        client: list[float] = []
        server: list[float] = []
        n = 0
        for _ in range(rounds):
            c0, s0 = time.process_time(), server_cpu(pg_dir, redis_dir)
            for _ in range(ops):
                t = time.perf_counter()
                op(n)
                lat.append(time.perf_counter() - t)
                n += 1
            client.append((time.process_time() - c0) / ops)
            server.append((server_cpu(pg_dir, redis_dir) - s0) / ops)
        lat.sort()
        out[name] = {
            "latency_median_us": statistics.median(lat) * 1e6,
            "latency_p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6,
            "client_cpu_us": statistics.median(client) * 1e6,
            "server_cpu_us": statistics.median(server) * 1e6,
        }
        print(f"  {name}: {out[name]['latency_median_us']:.0f} µs", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ops", type=int, default=300)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--redis-url", default="")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "stores.json")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    tmp = Path(tempfile.mkdtemp(prefix="shoprank-bench-stores-"))
    pg_dir = redis_dir = None
    try:
        db_url, redis_url = args.database_url, args.redis_url
        if not db_url:
            pg_dir = Path(tempfile.mkdtemp(prefix="shoprank-bench-pg-"))
            db_url = start_server("postgres", "POSTGRES", pg_dir)
        if not redis_url:
            redis_dir = Path(tempfile.mkdtemp(prefix="shoprank-bench-redis-"))
            redis_url = start_server("redis", "REDIS", redis_dir)
        results: dict[str, dict[str, dict[str, float]]] = {}
        print("embedded:", file=sys.stderr)
        with open_stores(None, None, tmp / "embedded") as s:
            results["embedded"] = measure(s, args.rounds, args.ops, None, None)
        print("shared:", file=sys.stderr)
        with open_stores(db_url, redis_url, tmp / "shared",
                         redis_prefix=f"bench{uuid.uuid4().hex[:6]}:") as s:
            results["shared"] = measure(s, args.rounds, args.ops, pg_dir, redis_dir)
    finally:
        if pg_dir is not None:
            stop_server("postgres", "POSTGRES", pg_dir)
            shutil.rmtree(pg_dir, ignore_errors=True)
        if redis_dir is not None:
            stop_server("redis", "REDIS", redis_dir)
            shutil.rmtree(redis_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)

    servers_measured = pg_dir is not None and redis_dir is not None
    table = Table(title=f"stores: per call, median of {args.rounds} rounds × {args.ops} calls "
                        "(µs; CPU = client + servers)")
    for col in ("operation", "embedded p50", "p99", "CPU", "shared p50", "p99",
                "client CPU", "server CPU", "CPU ratio"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for name, e in results["embedded"].items():
        sh = results["shared"][name]
        total = sh["client_cpu_us"] + sh["server_cpu_us"]
        e_cpu = e["client_cpu_us"] + e["server_cpu_us"]
        table.add_row(
            name, f"{e['latency_median_us']:,.0f}", f"{e['latency_p99_us']:,.0f}", f"{e_cpu:,.0f}",
            f"{sh['latency_median_us']:,.0f}", f"{sh['latency_p99_us']:,.0f}",
            f"{sh['client_cpu_us']:,.0f}",
            f"{sh['server_cpu_us']:,.0f}" if servers_measured else "n/a",
            f"{total / e_cpu:.2f}×" if e_cpu else "n/a",
        )
    Console().print(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "rounds": args.rounds, "ops": args.ops, "servers_cpu_measured": servers_measured,
        "cpu_count": os.cpu_count(), "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
