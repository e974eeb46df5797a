"""Benchmark: the API over the shared stores (PostgreSQL + Redis) next to the embedded default,
and two shared nodes behind HAProxy next to one.

    python bench/shared.py                                   # 20k users × 5k items × 400k events
    python bench/shared.py --users 100000 --items 20000 --events 2000000 --duration 15
    python bench/shared.py --routes recommendations --rounds 5 --no-two-nodes  # one ratio

From a fresh home (a temporary folder, or ``--home`` which must not exist): generate the shop,
train and promote the serving models, build the embedded index (``bench/serve.py``'s
``prepare``); start a PostgreSQL and a Redis of its own (``scripts/postgres``,
``scripts/redis``, temporary folders); then for each setup start ``shoprank serve`` (one
worker per node) and load recommendations and the feed with ``wrk`` (``--concurrency``
connections, random users) for ``--duration`` seconds:

- ``embedded``: one node on the home (SQLite and files);
- ``shared``: one node over PostgreSQL + Redis (the first start imports the shop files);
- ``two nodes``: two shared nodes, the second on an empty home, behind HAProxy (round robin).

Embedded and shared are measured in alternating rounds (``--rounds``; embedded then shared,
then shared then embedded, …), each round on a node started for it: on a shared 2-core
machine the CPU a request costs drifts by a third within minutes as other work comes and
goes, so each shared round is compared with the embedded round next to it, and ``× embedded``
is the median of those paired ratios (the CPU columns are medians over rounds). In each round
a route is first loaded for ``--warmup`` seconds unmeasured (the bounded caches of users'
consent and attributes fill, as they are in a server that has been up a while), then
measured once. The two-node setup is measured ``--rounds`` times after.

CPU per request counts the API processes and, for the shared setups, the PostgreSQL and
Redis server processes too (all on this machine), so ``cpu_ms_per_request`` compares whole
systems (``api_cpu_ms`` / ``stores_cpu_ms`` split it). Memory (PSS) of the API processes is
read after the load. Prints a table and writes bench/results/shared.json. Needs ``wrk`` and
``haproxy`` (Debian packages).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve import cpu_seconds, memory_mb, prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROUTES = ("recommendations", "feed")


def start_server(script: str, folder: Path) -> tuple[str, list[int]]:
    env = dict(os.environ, **{f"{script.upper()}_DIR": str(folder)})
    out = subprocess.run([str(ROOT / "scripts" / script), "start"], env=env, check=True,
                         capture_output=True, text=True, timeout=180).stdout
    return out.strip().splitlines()[-1], server_pids(script, folder)


def server_pids(script: str, folder: Path) -> list[int]:
    if script == "redis":
        return [int((folder / "redis.pid").read_text().split()[0])]
    return [int((folder / "data" / "postmaster.pid").read_text().split()[0])]


def stop_server(script: str, folder: Path) -> None:
    env = dict(os.environ, **{f"{script.upper()}_DIR": str(folder)})
    subprocess.run([str(ROOT / "scripts" / script), "stop"], env=env, check=False,
                   capture_output=True, timeout=120)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_node(home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
        env={**env, "SHOPRANK_HOME": str(home)}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=open(home / "server.err", "wb"),
    )
    base = f"http://127.0.0.1:{port}"
    wait_answers(base, proc, 600, f"the server ({home / 'server.err'})")
    return proc, base


def wait_answers(base: str, proc: subprocess.Popen[bytes], seconds: float, what: str) -> None:
    """Poll ``base``/healthz until it answers 200; fail when ``proc`` exits or time is up."""
    deadline = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not answer within {seconds:.0f} s")
        time.sleep(0.2)


def start_haproxy(folder: Path, bases: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    servers = "\n".join(f"    server n{i} {b.removeprefix('http://')} check inter 500ms"
                        for i, b in enumerate(bases))
    cfg = folder / "haproxy.cfg"
    cfg.write_text(f"""global
    maxconn 1024
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend shop
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /healthz
{servers}
""")
    proc = subprocess.Popen([shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f",
                             str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_answers(base, proc, 30, "HAProxy")
    return proc, base


def load(base: str, route: str, args: argparse.Namespace, pids: list[int],
         store_pids: list[int] = ()) -> dict[str, float]:  # type: ignore[assignment]
    """One wrk run: latency from wrk, CPU of ``pids`` and ``store_pids`` (and their children)
    around it."""
    def cpu(of: list[int]) -> float:
        return sum(sum(cpu_seconds(p).values()) for p in of)

    env = {**os.environ, "ROUTE": route, "N_USERS": str(args.users), "N_ITEMS": str(args.items)}
    load_avg = os.getloadavg()[0]
    a0, s0, t0 = cpu(pids), cpu(list(store_pids)), time.perf_counter()
    out = subprocess.run(
        ["wrk", "-t1", f"-c{args.concurrency}", f"-d{args.duration:.0f}s", "--timeout", "10s",
         "-s", str(ROOT / "bench" / "serve.lua"), base],
        env=env, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    api, stores = cpu(pids) - a0, cpu(list(store_pids)) - s0
    w = json.loads(next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))[8:])
    n = max(w["requests"], 1)
    return {"requests": w["requests"], "errors": w["non2xx"] + w["socket_errors"],
            "rps": w["requests"] / (w["duration_us"] / 1e6), "p50_ms": w["p50_us"] / 1000,
            "p99_ms": w["p99_us"] / 1000, "cpu_ms_per_request": 1000 * (api + stores) / n,
            "api_cpu_ms": 1000 * api / n, "stores_cpu_ms": 1000 * stores / n,
            "load_avg_before": load_avg, "wall_s": wall}


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def warm(base: str, route: str, args: argparse.Namespace, pids: list[int]) -> None:
    """Load ``route`` for ``args.warmup`` seconds, unmeasured."""
    if args.warmup > 0:
        load(base, route, argparse.Namespace(**{**vars(args), "duration": args.warmup}), pids)


def measure(base: str, route: str, args: argparse.Namespace, pids: list[int],
            store_pids: list[int] = ()) -> dict[str, float]:  # type: ignore[assignment]
    """Warm ``route`` up unmeasured, then :func:`load` it ``args.rounds`` times; the median of
    each figure over the rounds (CPU per request, req/s, p50, p99), with every round kept."""
    warm(base, route, args, pids)
    return medians([load(base, route, args, pids, store_pids) for _ in range(args.rounds)])


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    out = {k: statistics.median(float(r[k]) for r in runs) for k in runs[0]}
    out["rounds"] = runs  # type: ignore[assignment]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=5_000)
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="Seconds of unmeasured load on each route before it is measured.")
    ap.add_argument("--rounds", type=int, default=3, help="Measured runs per route (medians).")
    ap.add_argument("--set", action="append", default=[], metavar="SHOPRANK_NAME=VALUE",
                    help="A setting for every node, embedded and shared alike (repeatable), "
                         "e.g. SHOPRANK_USER_CACHE_SIZE=32768.")
    ap.add_argument("--routes", default=",".join(ROUTES),
                    help=f"Routes to measure, comma-separated (default {','.join(ROUTES)}).")
    ap.add_argument("--no-two-nodes", action="store_true",
                    help="Leave out the two-node setup (embedded and shared rounds only).")
    ap.add_argument("--home", type=Path, default=None, help="A folder that does not exist yet.")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "shared.json")
    args = ap.parse_args(argv)
    routes = [r for r in args.routes.split(",") if r]
    if not routes or any(r not in ROUTES for r in routes):
        raise SystemExit(f"--routes {args.routes!r}: choose from {', '.join(ROUTES)}")
    root = Path(tempfile.mkdtemp(prefix="shoprank-bench-shared-"))
    root.chmod(0o755)  # the servers run as their Debian users when started as root
    home = args.home or root / "home"
    if args.home is not None and args.home.exists():
        raise SystemExit(f"--home {args.home} exists: a benchmark starts from a fresh home")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")}
    base_env.update(SHOPRANK_SEARCH_BACKEND="embedded", SHOPRANK_LOG_LEVEL="WARNING",
                    OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    for pair in args.set:
        name, _, value = pair.partition("=")
        if not name.startswith("SHOPRANK_") or not value:
            raise SystemExit(f"--set {pair!r}: expected SHOPRANK_NAME=VALUE")
        base_env[name] = value
    t0 = time.perf_counter()
    os.environ["SHOPRANK_HOME"] = str(home)
    prepare(home, args.users, args.items, args.events)
    print(f"shop ready in {time.perf_counter() - t0:.0f}s", flush=True)
    rows: list[dict[str, object]] = []
    procs: list[subprocess.Popen[bytes]] = []
    servers: list[tuple[str, Path]] = []
    try:
        pg_url, pg_pids = start_server("postgres", root / "pg")
        servers.append(("postgres", root / "pg"))
        redis_url, redis_pids = start_server("redis", root / "redis")
        servers.append(("redis", root / "redis"))
        store_pids = pg_pids + redis_pids
        env = {**base_env, "SHOPRANK_DATABASE_URL": pg_url, "SHOPRANK_REDIS_URL": redis_url,
               "SHOPRANK_MODEL_REGISTRY": str(home / "models")}
        t1 = time.perf_counter()
        first, _ = start_node(home, env)
        print(f"first shared start (imports the shop) {time.perf_counter() - t1:.0f}s", flush=True)
        stop(first)
        # embedded and shared in alternating rounds, a node started for each (module docstring)
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        pss: dict[str, float] = {}
        for rnd in range(args.rounds):
            order = ("embedded", "shared") if rnd % 2 == 0 else ("shared", "embedded")
            for setup in order:
                node, base = start_node(home, base_env if setup == "embedded" else env)
                procs.append(node)
                for route in routes:
                    warm(base, route, args, [node.pid])
                    r = load(base, route, args, [node.pid],
                             [] if setup == "embedded" else store_pids)
                    runs.setdefault((setup, route), []).append(r)
                    print(f"round {rnd + 1} {setup} {route}: "
                          f"{r['cpu_ms_per_request']:.3f} CPU ms/request", flush=True)
                pss[setup] = memory_mb(node.pid)["pss_mb"]
                stop(node)
        for setup in ("embedded", "shared"):
            for route in routes:
                m = medians(runs[(setup, route)])
                paired = [s["cpu_ms_per_request"] / e["cpu_ms_per_request"] for s, e in
                          zip(runs[("shared", route)], runs[("embedded", route)], strict=True)]
                rows.append({"setup": setup, "route": route, **m, "api_pss_mb": pss[setup],
                             **({"paired_ratios": paired} if setup == "shared" else {})})
                print(rows[-1], flush=True)
        if not args.no_two_nodes:
            a, base_a = start_node(home, env)
            procs.append(a)
            b, base_b = start_node(root / "node-b", env)
            procs.append(b)
            proxy, base_p = start_haproxy(root, [base_a, base_b])
            procs.append(proxy)
            for route in routes:
                r = measure(base_p, route, args, [a.pid, b.pid, proxy.pid], store_pids)
                rows.append({"setup": "two nodes + HAProxy", "route": route, **r,
                             "api_pss_mb": memory_mb(a.pid)["pss_mb"]
                             + memory_mb(b.pid)["pss_mb"]})
                print(rows[-1], flush=True)
    finally:
        for p in procs:
            stop(p)
        for script, folder in servers:
            stop_server(script, folder)
    emb = {r["route"]: r["cpu_ms_per_request"] for r in rows if r["setup"] == "embedded"}
    print(f"\n{'setup':<22}{'route':<17}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'CPU ms/req':>11}{'× embedded':>11}{'PSS MB':>8}{'load':>6}")
    for r in rows:
        # shared: the median of the ratios to the embedded round next to each; two nodes
        # (measured after): the ratio of the medians
        ratio = (statistics.median(r["paired_ratios"]) if "paired_ratios" in r  # type: ignore[arg-type]
                 else float(r["cpu_ms_per_request"]) / emb[str(r["route"])])  # type: ignore[arg-type]
        r["cpu_vs_embedded"] = ratio
        print(f"{r['setup']:<22}{r['route']:<17}{r['rps']:>8.0f}{r['p50_ms']:>8.1f}"
              f"{r['p99_ms']:>8.1f}{r['cpu_ms_per_request']:>11.2f}{ratio:>11.2f}"
              f"{r['api_pss_mb']:>8.0f}{r['load_avg_before']:>6.1f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({
        "shop": {"users": args.users, "items": args.items, "events": args.events},
        "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds,
        "settings": args.set,
        "concurrency": args.concurrency, "cpus": os.cpu_count(),
        "rows": rows}, indent=2))
    print(f"wrote {args.results}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
