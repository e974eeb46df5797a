"""Where soak memory goes: a ``tracemalloc`` diff of the app under the soak's mixed load.

    python bench/soak_trace.py --home var/trace-home --shared          # over PostgreSQL + Redis
    python bench/soak_trace.py --home var/trace-home --warmup 3000 --measure 3000

The app runs in this process (``create_app``, its start-up and shut-down included, one
worker) on a home prepared like ``bench/soak.py``'s (``bench/serve.py``'s ``prepare``; kept
and reused). The same request mix as the soak (``soak.next_request``) is sent ``--warmup``
times untraced, then tracing starts, ``--measure`` more requests are sent and the heap is
snapshotted: what the measured requests allocated and is still alive. Prints the lines that
allocated most of it, who holds an object from each (a chain of referrers), the call paths
of the largest, the process's private memory (USS) at both points, and writes
``bench/results/soak-trace.json``. Tracing slows the measured requests several times: the
rate is not a soak's.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import serve as serve_bench  # noqa: E402  (bench/serve.py: prepare)
import shared as shared_bench  # noqa: E402  (bench/shared.py: start_server, stop_server)
import soak  # noqa: E402  (bench/soak.py: next_request, private_mb)
from fastapi.testclient import TestClient  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def drive(client: TestClient, n: int, rng: random.Random, users: int, items: int,
          served: list[str]) -> int:
    """Send ``n`` requests of the soak's mix; returns how many failed."""
    errors = 0
    for _ in range(n):
        method, path, body = soak.next_request(rng, users, items, served)
        r = client.get(path, params=body) if method == "GET" else client.post(path, json=body)
        ok = r.status_code < 400
        if ok and path == "/v1/feed" and r.json().get("has_more"):
            r2 = client.get(path, params={**body, "page": 2, "request_id": r.json()["request_id"]})
            ok = r2.status_code < 400
        if ok and method == "GET" and len(served) < 10_000:
            served.append(r.json().get("request_id", ""))
        errors += 0 if ok else 1
    return errors


def describe(obj: object) -> str:
    """A short name for an object in a chain of referrers."""
    kind = type(obj).__name__
    if isinstance(obj, dict):
        keys = list(obj)[:3]
        return f"dict(len={len(obj)}, keys={keys!r:.60})"
    if isinstance(obj, list | tuple | set | frozenset):
        return f"{kind}(len={len(obj)})"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def holders(lines: list[tuple[str, int]], depth: int = 6) -> dict[str, list[str]]:
    """For each (file, line): who holds one live object allocated there, as a chain of
    referrers (the object, what refers to it, what refers to that, ...). Only objects the
    garbage collector tracks can be found (not strings, nor dicts of plain values)."""
    out: dict[str, list[str]] = {}
    objs = gc.get_objects()
    ignore = {id(objs), id(out)}
    for obj in objs:
        tb = tracemalloc.get_object_traceback(obj)
        if tb is None:
            continue
        key = (tb[-1].filename, tb[-1].lineno)  # the most recent frame: where it was made
        where = f"{os.path.relpath(key[0], ROOT)}:{key[1]}"
        if key not in lines or where in out:
            continue
        chain = [describe(obj)]
        cur = obj
        for _ in range(depth):
            refs = gc.get_referrers(cur)
            ignore.add(id(refs))
            refs = [r for r in refs if id(r) not in ignore and not inspect.isframe(r)]
            ignore.add(id(refs))
            if not refs:
                break
            cur = refs[0]
            ignore.add(id(cur))
            chain.append(describe(cur))
        out[where] = chain
    del objs
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=ROOT / "var" / "bench-soak-trace")
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=5_000)
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--warmup", type=int, default=3000)
    ap.add_argument("--measure", type=int, default=3000)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--explain", type=int, default=12,
                    help="Show who holds an object allocated at each of the top lines.")
    ap.add_argument("--shared", action="store_true",
                    help="Serve over a PostgreSQL and a Redis of the bench's own.")
    ap.add_argument("--results", type=Path,
                    default=ROOT / "bench" / "results" / "soak-trace.json")
    args = ap.parse_args(argv)
    home = args.home.resolve()
    serve_bench.prepare(home, args.users, args.items, args.events)
    os.environ.update(SHOPRANK_HOME=str(home), SHOPRANK_SEARCH_BACKEND="embedded",
                      SHOPRANK_LOG_LEVEL="WARNING", SHOPRANK_MODEL_POLL_SECONDS="0")
    servers: list[tuple[str, Path]] = []
    if args.shared:
        stores_dir = Path(tempfile.mkdtemp(prefix="shoprank-trace-"))
        stores_dir.chmod(0o755)  # the servers run as their Debian users when started as root
        for script in ("postgres", "redis"):
            url, _ = shared_bench.start_server(script, stores_dir / script)
            servers.append((script, stores_dir / script))
            os.environ["SHOPRANK_DATABASE_URL" if script == "postgres"
                       else "SHOPRANK_REDIS_URL"] = url
    from core.settings import get_settings
    from serving.app import create_app

    rng = random.Random(7)
    served: list[str] = []
    pid = os.getpid()
    try:
        with TestClient(create_app(get_settings())) as client:
            t0 = time.perf_counter()
            errors = drive(client, args.warmup, rng, args.users, args.items, served)
            gc.collect()
            # traced from here on: what the measured requests allocate and is still alive
            tracemalloc.start(args.frames)
            before, uss_before = tracemalloc.take_snapshot(), soak.private_mb(pid)
            t1 = time.perf_counter()
            errors += drive(client, args.measure, rng, args.users, args.items, served)
            gc.collect()
            after, uss_after = tracemalloc.take_snapshot(), soak.private_mb(pid)
            t2 = time.perf_counter()
            top_lines = [(d.traceback[0].filename, d.traceback[0].lineno)
                         for d in after.compare_to(before, "lineno")[: args.explain]]
            held = holders(top_lines)
            pipeline = client.app.state.services.pipeline  # type: ignore[attr-defined]
            global_lists = pipeline.globals.cached_lists()
    finally:
        for script, folder in servers:
            shared_bench.stop_server(script, folder)
    keep = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen*")]
    before, after = before.filter_traces(keep), after.filter_traces(keep)
    by_line = after.compare_to(before, "lineno")
    total = sum(d.size_diff for d in by_line) / 1e6
    print(f"\n{args.warmup} warm-up requests in {t1 - t0:.0f} s, {args.measure} measured in "
          f"{t2 - t1:.0f} s, {errors} errors; traced Python heap {total:+.2f} MB, "
          f"private memory {uss_before:.1f} → {uss_after:.1f} MB "
          f"({uss_after - uss_before:+.1f} MB, tracing included)\n")
    print(f"{'KB':>9} {'blocks':>8}  where")
    rows = []
    for d in by_line[: args.top]:
        frame = d.traceback[0]
        where = f"{os.path.relpath(frame.filename, ROOT)}:{frame.lineno}"
        print(f"{d.size_diff / 1e3:>9.1f} {d.count_diff:>8}  {where}")
        rows.append({"where": where, "kb": round(d.size_diff / 1e3, 1), "blocks": d.count_diff})
    print(f"\nexplained lists kept by GlobalSources: {global_lists}\nwho holds what the top "
          "lines allocated (object <- referrer <- ...):")
    for where, chain in held.items():
        print(f"  {where}\n      " + " <- ".join(chain))
    by_trace = after.compare_to(before, "traceback")
    for d in by_trace[:3]:
        print(f"\n{d.size_diff / 1e3:+.1f} KB allocated along:")
        for line in d.traceback.format(limit=args.frames)[-2 * args.frames:]:
            print("   ", line)
    result = {
        "command": "python bench/soak_trace.py " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "warmup_requests": args.warmup, "measured_requests": args.measure, "errors": errors,
        "traced_growth_mb": round(total, 2), "uss_before_mb": round(uss_before, 1),
        "uss_after_mb": round(uss_after, 1), "top": rows, "holders": held,
        "global_lists": global_lists,
        "load_avg": round(os.getloadavg()[0], 1),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.results}")


if __name__ == "__main__":
    main()
