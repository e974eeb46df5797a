"""Benchmark: CPU per call of the learned ranker stage for 200 candidates (budget ≤ 2 ms).

    python bench/ranker.py                  # 200 candidates, 300 calls, default ranker size
    python bench/ranker.py --candidates 100 --calls 500

In a fresh temporary home: a generated catalog (1,000 items), a LambdaRank model of the
default size (``RankerParams``: 150 trees of 15 leaves) fitted on synthetic lists of the real
feature set, and shoppers with 30 recent items and category / brand affinities. One call =
what ``ranking.learned.LearnedStage.score`` does per request: the feature matrix
(``models.ranker_features.features``), LightGBM's predict, the reordered items with
their reasons. CPU time (``time.process_time``) of each call; prints medians and p90 per part
and writes bench/results/ranker.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()

    from data.catalog import Catalog
    from data.synthetic import ShopSpec, generate
    from models.lambdarank import LambdaRanker
    from models.ranker_features import FEATURES, Candidate, ItemStats, ItemTable, features
    from ranking.learned import LearnedStage
    from ranking.profile import UserProfile
    from ranking.types import Reason, ScoredItem

    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        generate(ShopSpec(n_users=200, n_items=1000, n_events=5000), Path(tmp), progress=False)
        catalog = Catalog.from_jsonl(Path(tmp) / "items.jsonl")
    ids = catalog.ids()
    stats = ItemStats({i: float(rng.random() * 5) for i in ids},
                      {i: float(rng.normal()) for i in ids}, {})
    # a model of the default size on lists of the real feature width
    n_lists, per = 400, 20
    x = rng.normal(size=(n_lists * per, len(FEATURES))).astype(np.float32)
    y = np.clip((x[:, 0] + x[:, 20] + rng.normal(size=len(x)) > 1.5).astype(int)
                + (x[:, 21] > 1.8), 0, 3)
    model = LambdaRanker().fit(x, y, np.full(n_lists, per), np.tile(np.arange(per), n_lists),
                               stats=stats)
    stage = LearnedStage(Path(tmp), catalog)
    table = ItemTable(catalog, stats)
    now = datetime.now(UTC)
    reason = Reason(source="cf", model_version="v1")
    cats = [f.category_path for f in (catalog.facts(i) for i in ids[:50]) if f]
    parts: dict[str, list[float]] = {
        "features": [], "predict": [], "stage (features + predict + order)": []}
    for call in range(args.calls):
        picked = rng.choice(len(ids), args.candidates, replace=False)
        items = [ScoredItem(ids[k], 1.0 / (r + 1), (reason,), MappingProxyType({
            "cf": float(rng.random()), "blend:cf": float(np.exp(-r / 25)),
            **({"trending": 0.5, "blend:trending": 0.1} if r % 7 == 0 else {})}))
            for r, k in enumerate(picked)]
        profile = UserProfile(
            user_id=f"u{call}", known=True,
            recent_items=tuple(ids[k] for k in rng.choice(len(ids), 30, replace=False)),
            category_affinity=MappingProxyType({c: float(rng.random() * 5) for c in cats[:8]}),
            brand_affinity=MappingProxyType({"Lumière": 2.0, "Northland": 1.0}),
        )
        cands = [Candidate(it.item_id, it.breakdown) for it in items]
        t0 = time.process_time()
        xm = features(cands, profile, table, now)
        t1 = time.process_time()
        model.predict(xm)
        t2 = time.process_time()
        stage.score(items, profile, model, table, "v1")
        t3 = time.process_time()
        parts["features"].append((t1 - t0) * 1e3)
        parts["predict"].append((t2 - t1) * 1e3)
        parts["stage (features + predict + order)"].append((t3 - t2) * 1e3)
    rows = {k: {"median_ms": statistics.median(v), "p90_ms": float(np.percentile(v, 90))}
            for k, v in parts.items()}
    print(f"learned ranker, {args.candidates} candidates, {args.calls} calls, CPU ms per call")
    print(f"{'part':<40}{'median':>10}{'p90':>10}")
    for k, r in rows.items():
        print(f"{k:<40}{r['median_ms']:>10.3f}{r['p90_ms']:>10.3f}")
    budget = 2.0
    stage_ms = rows["stage (features + predict + order)"]["median_ms"]
    print(f"budget {budget} ms: {'within' if stage_ms <= budget else 'OVER'} "
          f"(median {stage_ms:.3f} ms = {stage_ms / budget:.2f}× the budget)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranker.json").write_text(json.dumps({
        "candidates": args.candidates, "calls": args.calls, "trees": model.params.num_trees,
        "leaves": model.params.num_leaves, "parts": rows, "budget_ms": budget,
        "at": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
