"""Benchmark: the whole `train` job vs a raw `implicit` ALS fit on the same matrix.

    .venv/bin/python bench/train.py                       # 20M events, 1M users, 100k items
    .venv/bin/python bench/train.py --events 2000000 --users 100000 --items 20000

Generates the synthetic shop once (data engineer's generator, cached in --data), then:

1. the train job as `shoprank train` runs it (training.jobs.train): read parquet + users +
   items, de-duplicate, consent filter, weights/decay/refunds, CSR build, ALS fit, save,
   register and promote — no holdout evaluation;
2. a raw ``implicit.cpu.als.AlternatingLeastSquares`` fit with the same parameters on the
   matrix the job built.

Prints a table and writes bench/results/train.json. Ratio = our ALS fit / raw fit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _public_args(argv: list[str]) -> list[str]:
    """The arguments without machine-specific paths (--data, --out)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--data", "--out"):
            skip = True
            continue
        if not a.startswith(("--data=", "--out=")):
            out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=None, help="Shop folder (generated if missing).")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1, help="Raw-fit repeats (median is quoted).")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train.json")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table
    from threadpoolctl import threadpool_limits

    from data.synthetic import ShopSpec, generate
    from training.config import ModelEntry, default_config
    from training.interactions import build_interactions
    from training.jobs import load_input, matrix_config, train

    data = (
        args.data
        or Path(tempfile.gettempdir()) / f"shoprank-bench-{args.events}-{args.users}-{args.items}"
    )
    if not (data / "events.parquet").is_file():
        t0 = time.perf_counter()
        generate(ShopSpec(n_users=args.users, n_items=args.items, n_events=args.events), data,
                 progress=True)
        print(f"generated the shop in {time.perf_counter() - t0:.0f}s → {data}")

    cfg = default_config(data)
    cfg.data.event_log = False
    cfg.train.holdout_metrics = False
    params = {"factors": args.factors, "iterations": args.iterations, "regularization": 0.05,
              "alpha": 2.0}
    cfg.models = [ModelEntry(name="als", algorithm="als", params=params)]

    with tempfile.TemporaryDirectory() as models_dir:
        t0 = time.perf_counter()
        rep = train(
            cfg, Path(models_dir), promote=True, progress=lambda m: print(f"  {m}…", flush=True)
        )
        job_s = time.perf_counter() - t0
    ours_fit = rep.models[0].fit_seconds

    # The same matrix, fitted by implicit directly.
    inp = load_input(cfg)
    full = build_interactions(inp.frame, matrix_config(cfg), catalog=inp.catalog)
    from implicit.cpu.als import AlternatingLeastSquares

    raw = []
    for _ in range(args.repeats):
        with threadpool_limits(1, "blas"):
            m = AlternatingLeastSquares(factors=args.factors, iterations=args.iterations,
                                        regularization=0.05, alpha=2.0, random_state=42)
            t0 = time.perf_counter()
            m.fit(full.matrix, show_progress=False)
            raw.append(time.perf_counter() - t0)
    raw_s = statistics.median(raw)
    result = {
        "events_in_files": int(rep.counts["events"]),
        "users": rep.counts["users"], "items": rep.counts["items"],
        "interactions": rep.counts["interactions"],
        "params": params,
        "job_seconds": round(job_s, 2),
        "job_phases_seconds": {k: round(v, 2) for k, v in rep.seconds.items()},
        "our_als_fit_seconds": round(ours_fit, 2),
        "raw_implicit_fit_seconds_median": round(raw_s, 2),
        "raw_runs": [round(x, 2) for x in raw],
        "fit_ratio": round(ours_fit / raw_s, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "command": " ".join(["python bench/train.py", *_public_args(sys.argv[1:])]),
        "load_average_at_end": round(os.getloadavg()[0], 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    t = Table(title=f"train job on {result['events_in_files']:,} events "
                    f"({result['users']:,} users × {result['items']:,} items, "
                    f"{result['interactions']:,} interactions)")
    t.add_column("measure")
    t.add_column("seconds", justify="right")
    for k, v in result["job_phases_seconds"].items():
        t.add_row(f"job: {k}", f"{v:.1f}")
    t.add_row("job: total", f"{job_s:.1f}")
    t.add_row("our ALS fit", f"{ours_fit:.1f}")
    t.add_row(f"raw implicit ALS fit (median of {len(raw)})", f"{raw_s:.1f}")
    t.add_row("ratio ours / raw (fit)", f"{result['fit_ratio']:.2f}×")
    Console().print(t)
    print(f"→ {args.out}")


if __name__ == "__main__":
    main()
