"""Benchmark: the in-memory catalog — memory, load time, get() hot and cold, iteration, views.

    python bench/catalog.py                       # items of the home bench/serve.py prepared (100k)
    python bench/catalog.py --items var/bench-serve-20000x5000/data/items.jsonl
    python bench/catalog.py --old-rev 7eafea2     # also measure data/catalog.py as of that commit
    python bench/catalog.py --old-rev 2e93cf4~1 --repeat 1   # the deflate-per-item version

Each implementation is measured in a fresh process (so RSS deltas are its own): RSS added by
loading items.jsonl, load time (wall and CPU), ``get()`` of never-read ids (cold: built, after
5,000 other reads filled the LRU) and of the same ids again (hot) — wall and this thread's CPU
µs per call, medians over batches of 100 —, cold reads next to two busy threads (a call that
releases the GIL waits to get it back), a full iteration, ``save``, a ``CatalogViews`` refresh
(newest, promoted, best rated), the rule validator's brand set and a rule filter over 300
random candidates (reading items with ``get``, and with the column-only ``facts`` where
present). The "old" implementation is read with ``git show REV:data/catalog.py`` (and its
catalog_views.py) into a temporary module. Prints a table of medians over ``--repeat`` runs
(implementations alternating) and writes bench/results/catalog.json.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_ITEMS = ROOT / "var" / "bench-serve-1000000x100000" / "data" / "items.jsonl"


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _module_at(rev: str, path: str, name: str, where: Path) -> object:
    src = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    file = where / f"{name}.py"
    file.write_text(src, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _per_op_us(fn: object, ids: list[str], batch: int = 100) -> tuple[float, float]:
    """Median over batches of the mean wall and CPU (this thread) µs per call."""
    wall, cpu = [], []
    for k in range(0, len(ids) - batch + 1, batch):
        chunk = ids[k : k + batch]
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        for i in chunk:
            fn(i)  # type: ignore[operator]
        w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        wall.append((w1 - w0) / batch / 1000)
        cpu.append((c1 - c0) / batch / 1000)
    return statistics.median(wall), statistics.median(cpu)


def _busy_get_us(fn: object, ids: list[str]) -> float:
    """Mean wall µs of cold reads while two other threads keep the interpreter busy (as
    request threads do in a loaded server: a call that releases the GIL waits to get it back)."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(100))

    threads = [threading.Thread(target=spin) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        t0 = time.perf_counter()
        for i in ids:
            fn(i)  # type: ignore[operator]
        return (time.perf_counter() - t0) / max(len(ids), 1) * 1e6
    finally:
        stop.set()
        for t in threads:
            t.join()


def _rule_filter_ms(
    cat: object, ids: list[str], n: int = 300, lists: int = 20
) -> tuple[float, float]:
    """A bury-by-brand filter over `n` random candidates (as the rules engine runs it): median ms
    per list reading items with ``get`` (cold ids: a fresh list each time), and with ``facts``
    where the catalog has it (NaN otherwise)."""
    from datetime import UTC, datetime

    from merch.rules.engine import item_matches
    from merch.rules.model import ItemFilter

    f = ItemFilter(brands=("Snuggle", "StrideOn"), in_stock=True)
    now = datetime.now(UTC)
    rng = random.Random(1)
    out = []
    for read in ("get", "facts"):
        fn = getattr(cat, read, None)
        if fn is None:
            out.append(float("nan"))
            continue
        ts = []
        for _ in range(lists):
            cand = rng.sample(ids, n)
            t = time.perf_counter()
            [i for i in cand if item_matches(f, i, fn(i), now)]
            ts.append((time.perf_counter() - t) * 1000)
        out.append(statistics.median(ts))
    return out[0], out[1]


def measure(items_path: Path, rev: str | None, n_get: int) -> dict[str, float | str]:
    """One implementation, in this process: `rev` None is the working tree's."""
    import numpy  # noqa: F401  (imported before the baseline so it is not counted)

    from data.models import Item  # noqa: F401

    tmp = Path(tempfile.mkdtemp(prefix="shoprank-bench-catalog-"))
    if rev is None:
        from data.catalog import Catalog
        from ranking.catalog_views import CatalogViews
    else:
        old_catalog = _module_at(rev, "data/catalog.py", "old_catalog", tmp)
        old_views = _module_at(rev, "ranking/catalog_views.py", "old_views", tmp)
        Catalog = old_catalog.Catalog  # type: ignore[attr-defined]  # noqa: N806
        CatalogViews = old_views.CatalogViews  # type: ignore[attr-defined]  # noqa: N806
    gc.collect()
    r0 = _rss_mb()
    t, c = time.perf_counter(), time.process_time()
    cat = Catalog.from_jsonl(items_path)
    load_s, load_cpu_s = time.perf_counter() - t, time.process_time() - c
    gc.collect()
    rss = _rss_mb() - r0
    ids = [it.item_id for it in cat] if rev is not None else cat.ids()
    rng = random.Random(0)
    shuffled = rng.sample(ids, len(ids))
    sample, warm = shuffled[:n_get], shuffled[n_get : n_get + 5000]
    for i in warm:  # steady state: a full hot cache, so cold reads evict (and reuse memory)
        cat.get(i)
    cold, cold_cpu = _per_op_us(cat.get, sample)
    hot, hot_cpu = _per_op_us(cat.get, sample)
    busy = _busy_get_us(cat.get, shuffled[n_get + 5000 : n_get + 6000])
    gc.collect()
    rss_after_gets = _rss_mb() - r0
    t = time.perf_counter()
    n = sum(1 for _ in cat)
    iter_s = time.perf_counter() - t
    t = time.perf_counter()
    cat.save(tmp / "items.jsonl")
    save_s = time.perf_counter() - t
    views = CatalogViews(cat)
    t = time.perf_counter()
    views.newest()
    views_ms = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    if hasattr(cat, "brands"):
        brands = {b.casefold() for b in cat.brands()}
    else:
        brands = {i.brand.casefold() for i in cat if i.brand}
    brands_ms = (time.perf_counter() - t) * 1000
    rule_ms, rule_facts_ms = _rule_filter_ms(cat, ids)
    return {
        "impl": "working tree" if rev is None else f"git {rev}",
        "items": n,
        "rss_mb": round(rss, 1),
        "rss_after_gets_mb": round(rss_after_gets, 1),
        "load_s": round(load_s, 2),
        "load_cpu_s": round(load_cpu_s, 2),
        "get_cold_us": round(cold, 2),
        "get_cold_cpu_us": round(cold_cpu, 2),
        "get_hot_us": round(hot, 2),
        "get_hot_cpu_us": round(hot_cpu, 2),
        "get_cold_2_busy_threads_us": round(busy, 2),
        "iter_s": round(iter_s, 2),
        "save_s": round(save_s, 2),
        "views_refresh_ms": round(views_ms, 1),
        "brands_ms": round(brands_ms, 2),
        "distinct_brands": len(brands),
        "rule_filter_300_ms": round(rule_ms, 2),
        "rule_filter_300_facts_ms": round(rule_facts_ms, 2),
    }


def _medians(runs: list[dict[str, float | str]]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for k, v in runs[0].items():
        if isinstance(v, str):
            out[k] = v
        else:
            out[k] = round(statistics.median(float(r[k]) for r in runs), 2)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=Path, default=DEFAULT_ITEMS, help="An items.jsonl to load.")
    ap.add_argument("--old-rev", default=None,
                    help="Also measure data/catalog.py (and catalog_views.py) at this commit.")
    ap.add_argument("--repeat", type=int, default=3, help="Fresh processes per implementation.")
    ap.add_argument("--gets", type=int, default=3000, help="Distinct ids read cold, then hot.")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "catalog.json")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:  # one measurement in this (fresh) process
        rev = None if args.child == "-" else args.child
        print(json.dumps(measure(args.items, rev, args.gets)))
        return
    if not args.items.exists():
        sys.exit(f"no {args.items}: run bench/serve.py once (it prepares that home) "
                 "or pass --items")

    from rich.console import Console
    from rich.table import Table

    load_before = os.getloadavg()[0]
    revs = ([args.old_rev] if args.old_rev else []) + ["-"]
    runs: dict[str, list[dict[str, float | str]]] = {rev: [] for rev in revs}
    for _ in range(args.repeat):  # implementations alternate, so both see the same load
        for rev in revs:
            out = subprocess.run(
                [sys.executable, __file__, "--items", str(args.items), "--gets", str(args.gets),
                 "--child", rev], check=True, capture_output=True, text=True).stdout
            runs[rev].append(json.loads(out.strip().splitlines()[-1]))
    rows = [_medians(runs[rev]) for rev in revs]
    result: dict[str, object] = {
        "benchmark": "catalog",
        "command": "python bench/catalog.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "items_file_mb": round(args.items.stat().st_size / 1e6, 1),
        "repeat": args.repeat,
        "load_average_before": load_before,
        "medians": rows,
        "runs": runs,
    }
    if len(rows) == 2:
        old, new = rows
        result["memory_ratio_old_over_new"] = round(old["rss_mb"] / max(new["rss_mb"], 0.1), 1)
    result["load_average"] = os.getloadavg()[0]
    table = Table(title=f"catalog benchmark ({int(rows[-1]['items'])} items, "
                  f"{result['items_file_mb']} MB of JSON; median of {args.repeat})",
                  title_justify="left")
    table.add_column("metric")
    for r in rows:
        table.add_column(str(r["impl"]), justify="right")
    for k in rows[0]:
        if k != "impl":
            table.add_row(k, *(str(r[k]) for r in rows))
    Console().print(table)
    if "memory_ratio_old_over_new" in result:
        Console().print(f"memory: old / new = {result['memory_ratio_old_over_new']}x")
    after = result["load_average"]
    Console().print(f"load average before / after: {load_before:.2f} / {after:.2f}")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
