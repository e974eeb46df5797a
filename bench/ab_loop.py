"""Closed-loop A/B test: the learned ranker against the hand blend, on simulated shoppers.

    python bench/ab_loop.py            # 1,000 users × 500 items; 1,500 + 3,000 sessions; ≈ 2 min
    python bench/ab_loop.py --sessions 1500   # quicker; the conversion lift's p grows

In a fresh home: generate a shop (``data.synthetic``), train and promote the models, then the
learned ranker exactly as ``shoprank train --promote`` does (the shop has no served lists, so
``--bootstrap`` simulated sessions under the hand blend come first, 20 % of the shoppers shown
random orders). Then an experiment splits the shoppers 50/50 between the hand blend
(``model_versions.ranker = off``) and the ranker (``current``); ``--sessions`` storefront
sessions (``simulate.storefront``: the live app served over HTTP by uvicorn in a thread of
this process, a 20-item feed per session, impressions / clicks / carts / purchases drawn from
each shopper's hidden tastes, posted 20 sessions at a time) run, and the
project's KPI report of the experiment gives CTR, conversion and revenue per user with 95 %
intervals, lift and significance. Prints a table, writes bench/results/ab_loop.json and the
report's charts (PNG) under bench/results/ab_loop/.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--bootstrap", type=int, default=1500, help="hand-blend sessions first")
    ap.add_argument("--sessions", type=int, default=3000, help="A/B sessions")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from pydantic import SecretStr

    from core.settings import Settings
    from data.synthetic import ShopSpec, generate
    from simulate.bootstrap import train_ranker_step
    from simulate.loop import KPIS, ab_test
    from simulate.storefront import World, live_api
    from training.config import default_config
    from training.jobs import train

    t_all = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_all:6.0f} s] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="ab-loop-") as tmp:
        home = Path(tmp)
        s = Settings(home=home, environment="test", search_backend="embedded",
                     model_poll_seconds=0, admin_api_key=SecretStr(secrets.token_hex(16)))
        generate(ShopSpec(n_users=args.users, n_items=args.items, n_events=args.events,
                          seed=args.seed), s.data_dir, progress=False)
        cfg = default_config(s.data_dir)
        cfg.train.holdout_metrics = False
        t0 = time.perf_counter()
        say(f"shop generated ({args.users:,} users × {args.items:,} items); training the models")
        rep = train(cfg, s.models_dir, events_dir=s.events_dir, promote=True)
        versions = {m.name: m.version for m in rep.models}
        say(f"models trained; {args.bootstrap:,} hand-blend sessions, then the ranker")
        ranker, simulated = train_ranker_step(s, cfg, versions=versions, promote=True,
                                              bootstrap_sessions=args.bootstrap, say=say)
        train_s = time.perf_counter() - t0
        world = World.from_shop(s.data_dir)
        t0 = time.perf_counter()
        with live_api(s) as client:
            every = max(1, args.sessions // 10)
            res = ab_test(client, world, args.sessions, seed=args.seed, progress=lambda k: (
                say(f"A/B sessions {k:,}/{args.sessions:,}") if k % every == 0 else None))
            from analytics.charts import save_charts
            from serving.deps import get_reports

            charts_dir = ROOT / "bench" / "results" / "ab_loop"
            reports = get_reports(client.services)  # the app's services, for the charts
            charts = save_charts(reports.experiment("ranker-ab", "ctr"), charts_dir)
        ab_s = time.perf_counter() - t0
    kp = res.report["by_metric"]
    rows = []
    for m in ("ctr", "conversion_rate", "revenue_per_user"):
        r = kp[m] if m in kp else kp["ctr"]
        by = {v["label"]: v["metrics"][m] for v in r["by_variant"]}
        comp = next(c for c in r["comparisons"] if c["metric"] == m)
        rows.append({"kpi": m, "hand_blend": by["hand_blend"], "ranker": by["ranker"],
                     "lift": comp["lift"], "lift_ci": [comp["lift_low"], comp["lift_high"]],
                     "p_value": comp["p_value"], "significant": comp["significant"]})
    users = {v["label"]: v["users"] for v in kp["ctr"]["by_variant"]}
    print(f"closed loop: {args.users} users × {args.items} items; ranker {ranker.version} trained "
          f"on {ranker.n_lists:,} lists ({args.bootstrap:,} simulated sessions); "
          f"{args.sessions:,} A/B sessions, users per variant {users}")
    print(f"{'kpi':<18}{'hand blend':>30}{'ranker':>30}{'lift':>9}{'p':>11}  verdict")
    for r in rows:
        def cell(m: dict) -> str:
            return f"{m['value']:.4g} [{m['low']:.4g}, {m['high']:.4g}]"
        print(f"{r['kpi']:<18}{cell(r['hand_blend']):>30}{cell(r['ranker']):>30}"
              f"{r['lift']:>+9.1%}{r['p_value']:>11.2e}  "
              f"{'significant' if r['significant'] else 'not significant'}")
    print(f"time: train + ranker {train_s:.0f} s, A/B {ab_s:.0f} s, total "
          f"{time.perf_counter() - t_all:.0f} s; charts: {', '.join(p.name for p in charts)}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab_loop.json").write_text(json.dumps({
        "args": vars(args), "ranker_version": ranker.version, "ranker_lists": ranker.n_lists,
        "offline_heldout": ranker.heldout, "bootstrap": str(simulated), "loop": str(res.stats),
        "users_per_variant": users, "kpis": rows, "kpi_names": list(KPIS),
        "seconds": {"train": train_s, "ab": ab_s},
        "at": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
