"""Benchmark: CPU per request of the learned ranker stage for 200 candidates (budget ≤ 2 ms).

    python bench/ranker.py                  # 200 candidates, 2,000 calls per part
    python bench/ranker.py --candidates 100 --calls 500

In a fresh temporary home: a generated catalog (1,000 items), a LambdaRank model of the
default size (``RankerParams``: 150 trees of 15 leaves) fitted on synthetic lists of the real
feature set, and shoppers with 30 recent items and category / brand affinities. Candidates
come from the pipeline's own blend (``ranking.pipeline``) of a ``cf`` list of 200 items, a
``history`` list and a ``trending`` list, as a feed request blends them.

Parts, each timed alone with ``time.thread_time`` around one call (medians and p90 over the
calls, 50 warm-up calls first):

- features: ``models.ranker_features.feature_matrix`` for the 200 candidates;
- trees: ``models.forest`` scoring the 200 rows (what serving runs);
- LightGBM predict: ``Booster.predict`` on the same float32 C-contiguous rows with
  ``num_threads=1`` (for comparison; serving does not call it);
- stage score: ``LearnedStage.score`` (features + trees + the items in the ranker's order with
  its reason), the budget's measure;
- rerank end to end: ``LearnedStage.rerank`` from the blend's order, as the pipeline calls it
  with the registry's current ranker (building the blended items, the stage score, then the
  blended items past the first 200 in blend order).

Prints a table, writes bench/results/ranker.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.catalog import Catalog  # noqa: E402
from data.synthetic import ShopSpec, generate  # noqa: E402
from models.lambdarank import RANKER_NAME, LambdaRanker  # noqa: E402
from models.ranker_features import FEATURES, ItemStats, ItemTable, feature_matrix  # noqa: E402
from models.registry import Registry  # noqa: E402
from ranking.candidates import CandList  # noqa: E402
from ranking.learned import LearnedStage  # noqa: E402
from ranking.pipeline import Pipeline  # noqa: E402
from ranking.profile import UserProfile  # noqa: E402
from ranking.types import Reason  # noqa: E402

BUDGET_MS = 2.0


def _timed(fn: Callable[[], object], calls: int) -> list[float]:
    for _ in range(50):
        fn()
    out = []
    for _ in range(calls):
        t0 = time.thread_time()
        fn()
        out.append((time.thread_time() - t0) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=20,
                    help="distinct requests (shoppers and candidate lists) cycled through")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, home: Path) -> None:
    rng = np.random.default_rng(3)
    generate(ShopSpec(n_users=200, n_items=1000, n_events=5000), home, progress=False)
    catalog = Catalog.from_jsonl(home / "items.jsonl")
    ids = catalog.ids()
    stats = ItemStats({i: float(rng.random() * 5) for i in ids},
                      {i: float(rng.normal()) for i in ids}, {})
    # a model of the default size on lists of the real feature width
    n_lists, per = 400, 20
    x = rng.normal(size=(n_lists * per, len(FEATURES))).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = np.clip((np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 20]) + rng.normal(size=len(x))
                 > 1.5).astype(int) + (np.nan_to_num(x[:, 21]) > 1.8), 0, 3)
    model = LambdaRanker().fit(x, y, np.full(n_lists, per), np.tile(np.arange(per), n_lists),
                               stats=stats)
    table = ItemTable(catalog, stats)
    registry = Registry(home / "models")
    version = registry.register(RANKER_NAME, model)  # type: ignore[arg-type]
    registry.promote(RANKER_NAME, version)
    stage = LearnedStage(home / "models", catalog)
    assert stage.current_version() == version
    now = datetime.now(UTC)
    cats = [f.category_path for f in (catalog.facts(i) for i in ids[:50]) if f]
    requests = []
    for k in range(args.requests):
        pick = [ids[j] for j in rng.choice(len(ids), args.candidates + 60, replace=False)]
        lists = {
            "cf": CandList("cf", pick[:args.candidates], sorted(rng.random(args.candidates))[::-1],
                           Reason(source="cf", model_version="v1")),
            "history": CandList("history", pick[10:60], [1.0 / (r + 1) for r in range(50)],
                                Reason(source="history")),
            "trending": CandList("trending", pick[-60:], [60.0 - r for r in range(60)],
                                 Reason(source="trending")),
        }
        blended = Pipeline._blend(lists, {"cf": 1.0, "history": 1.0, "trending": 0.3})
        head = [blended.item(i) for i in blended.order[:args.candidates]]
        profile = UserProfile(
            user_id=f"u{k}", known=True,
            recent_items=tuple(ids[j] for j in rng.choice(len(ids), 30, replace=False)),
            category_affinity=MappingProxyType({c: float(rng.random() * 5) for c in cats[:8]}),
            brand_affinity=MappingProxyType({"Lumière": 2.0, "Northland": 1.0}),
        )
        xm = feature_matrix([it.item_id for it in head], [it.breakdown for it in head],
                            profile, table, now)
        requests.append((blended, head, profile, xm, np.ascontiguousarray(xm)))

    def cycle(fn: Callable[..., object]) -> Callable[[], object]:
        state = {"k": 0}

        def call() -> object:
            state["k"] = (state["k"] + 1) % len(requests)
            return fn(*requests[state["k"]])
        return call

    parts = {
        "features": cycle(lambda b, h, p, xm, xc: feature_matrix(
            [it.item_id for it in h], [it.breakdown for it in h], p, table, now)),
        "trees (models.forest)": cycle(lambda b, h, p, xm, xc: model.predict(xm)),
        "LightGBM Booster.predict": cycle(
            lambda b, h, p, xm, xc: model.booster_.predict(xc, num_threads=1)),
        "stage score (features + trees + order)": cycle(
            lambda b, h, p, xm, xc: stage.score(h, p, model, table, "v1")),
        "rerank end to end (build 200 + score)": cycle(
            lambda b, h, p, xm, xc: stage.rerank(b.order, b.item, lambda _i: True, p, None)),
    }
    rows = {}
    for name, fn in parts.items():
        v = _timed(fn, args.calls)
        rows[name] = {"median_ms": statistics.median(v), "p90_ms": float(np.percentile(v, 90))}
    load = os.getloadavg()
    print(f"learned ranker, {args.candidates} candidates, {args.calls} calls per part, "
          f"CPU ms per call (thread_time); load average {load[0]:.1f}")
    print(f"{'part':<42}{'median':>10}{'p90':>10}")
    for k, r in rows.items():
        print(f"{k:<42}{r['median_ms']:>10.3f}{r['p90_ms']:>10.3f}")
    stage_ms = rows["stage score (features + trees + order)"]["median_ms"]
    print(f"budget {BUDGET_MS} ms: {'within' if stage_ms <= BUDGET_MS else 'OVER'} "
          f"(stage median {stage_ms:.3f} ms = {stage_ms / BUDGET_MS:.2f}× the budget)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranker.json").write_text(json.dumps({
        "candidates": args.candidates, "calls": args.calls, "trees": model.params.num_trees,
        "leaves": model.params.num_leaves, "features": len(FEATURES), "parts": rows,
        "budget_ms": BUDGET_MS, "load_average_1m": load[0],
        "at": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
