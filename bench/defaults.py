"""Check: every personalized algorithm at its default parameters beats popularity, on the
synthetic shop at three sizes and on MovieLens-100K.

    python bench/defaults.py                          # small, medium, large + MovieLens-100K
    python bench/defaults.py --sizes small --no-movielens

Each synthetic shop is generated (``data.synthetic``, seed 42) in a fresh temporary home and
evaluated as ``shoprank evaluate`` does by default (temporal split at the 80th percentile of
event times, 30-day recency decay, NDCG@10 on up to 20,000 test users). MovieLens-100K is read
from RecBole's wheel (no download) with the usual random 75/25 split of each user's items and
no decay, as ``tests/training/test_public_defaults.py`` does. Every model runs at its default
parameters (``models.<algorithm>`` params classes). Prints NDCG@10 per algorithm and data set
with its ratio to popularity, writes bench/results/defaults.json and a PNG per data set
(NDCG@k per model) under bench/results/defaults/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.synthetic import ShopSpec, generate  # noqa: E402
from training.config import (  # noqa: E402
    DataSection,
    EvaluationSection,
    ModelEntry,
    TrainConfig,
    default_config,
)
from training.jobs import evaluate  # noqa: E402

PERSONALIZED = ("als", "bpr", "item_knn", "ease", "content")
SIZES = {  # users, items, events
    "small": (2_000, 1_000, 100_000),
    "medium": (10_000, 3_000, 500_000),
    "large": (30_000, 6_000, 1_500_000),
}


def _say(t0: float, msg: str) -> None:
    print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)


def movielens_file(tmp: Path) -> Path:
    """MovieLens-100K's ratings as ``u.data``, from the copy in RecBole's wheel."""
    spec = importlib.util.find_spec("recbole")  # finds the files; never imports recbole
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("RecBole's wheel is missing: run ./dev setup")
    inter = Path(spec.submodule_search_locations[0]) / "dataset_example/ml-100k/ml-100k.inter"
    lines = inter.read_text("utf-8").splitlines()
    out = tmp / "u.data"
    out.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    return out


def run_one(cfg: TrainConfig, out_dir: Path, say: Callable[[str], None]) -> dict[str, object]:
    cfg.models = [ModelEntry(name=a, algorithm=a) for a in (*PERSONALIZED, "popularity")]
    cfg.evaluation.ks = [5, 10, 20]
    rep = evaluate(cfg, out_dir, progress=say)
    skipped = dict(rep.skipped)
    return {
        "ndcg@10": {r.algorithm: r.metric("ndcg", 10) for r in rep.results},
        "recall@10": {r.algorithm: r.metric("recall", 10) for r in rep.results},
        "fit_s": {r.algorithm: r.fit_seconds for r in rep.results},
        "skipped": skipped, "test_users": rep.n_test_users, "counts": rep.counts,
        "plots": [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)
                  for p in rep.plots],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    ap.add_argument("--no-movielens", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    t0 = time.perf_counter()
    plots = ROOT / "bench" / "results" / "defaults"
    results: dict[str, dict[str, object]] = {}
    for size in args.sizes:
        users, items, events = SIZES[size]
        with tempfile.TemporaryDirectory(prefix=f"defaults-{size}-") as tmp:
            _say(t0, f"{size}: generating {users:,} users × {items:,} items × {events:,} events")
            s0 = time.perf_counter()
            generate(ShopSpec(n_users=users, n_items=items, n_events=events, seed=args.seed),
                     Path(tmp), progress=False)
            cfg = default_config(Path(tmp))
            cfg.data.event_log = False
            res = run_one(cfg, plots / size, lambda m, s=size: _say(t0, f"{s}: {m}"))
            res["shape"] = {"users": users, "items": items, "events": events}
            res["seconds"] = time.perf_counter() - s0
            results[size] = res
    if not args.no_movielens:
        with tempfile.TemporaryDirectory(prefix="defaults-ml100k-") as tmp:
            s0 = time.perf_counter()
            cfg = TrainConfig(
                data=DataSection(format="movielens", events=[movielens_file(Path(tmp))],
                                 event_log=False),
                evaluation=EvaluationSection(split="random", test_fraction=0.25, seed=0),
            )
            cfg.matrix.half_life_days = None  # ratings over seven months: no recency decay
            res = run_one(cfg, plots / "movielens-100k", lambda m: _say(t0, f"ml-100k: {m}"))
            res["seconds"] = time.perf_counter() - s0
            results["movielens-100k"] = res

    names = list(results)
    print("NDCG@10 at default parameters (× popularity); * = does not beat popularity")
    print(f"{'algorithm':<12}" + "".join(f"{n:>24}" for n in names))
    losers = []
    for alg in (*PERSONALIZED, "popularity"):
        cells = []
        for n in names:
            nd = results[n]["ndcg@10"]  # type: ignore[index]
            if alg not in nd:
                cells.append(f"{'skipped':>24}")
                continue
            ratio = nd[alg] / nd["popularity"] if nd["popularity"] else float("inf")
            lose = alg != "popularity" and nd[alg] <= nd["popularity"]
            if lose:
                losers.append(f"{alg} on {n}")
            cells.append(f"{nd[alg]:>14.4f} ({ratio:4.2f}×){'*' if lose else ' '}")
        print(f"{alg:<12}" + "".join(cells))
    print("seconds: " + ", ".join(f"{n} {results[n]['seconds']:.0f}" for n in names))
    print("every personalized default beats popularity" if not losers
          else f"below popularity: {', '.join(losers)}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "defaults.json").write_text(json.dumps({
        "results": results, "losers": losers, "personalized": PERSONALIZED,
        "at": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
