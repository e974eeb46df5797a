"""Should the learned ranker re-rank search by default? Relevance and simulated clicks with it
on and off, on the live API.

    python bench/search_ranker.py              # 1,000 users × 1,000 items, 300 queries × 2

In a fresh home: a generated shop, its models and its ranker trained as ``bench/ab_loop.py``
does (1,500 simulated hand-blend feed sessions, then the ranker on those lists), the catalog
indexed into the embedded search backend, then the app served over HTTP in process. An
experiment on the search surface splits the shoppers 50/50 between ``ranker: off`` (the
search order: lexical score, personalized) and ``ranker: current``. Each of the labeled queries
of ``search.relevance.make_queries`` (graded from the items' fields) is asked once by a
shopper of each variant (a pair per query); each answer is scored with NDCG@10 against the
labels, and shown to its shopper, whose clicks are drawn from their hidden tastes
(``simulate.storefront.World.react``; the behaviour model ignores the query, so these clicks
measure taste, not relevance). Prints the means per variant with the paired difference and
its 95 % interval, writes bench/results/search_ranker.json.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from core.settings import Settings  # noqa: E402
from data.loaders import iter_items  # noqa: E402
from data.synthetic import ShopSpec, generate  # noqa: E402
from merch.experiments import bucket  # noqa: E402
from search.factory import open_backend  # noqa: E402
from search.indexing import index_catalog  # noqa: E402
from search.relevance import make_queries, ndcg_at_k  # noqa: E402
from simulate.bootstrap import train_ranker_step  # noqa: E402
from simulate.storefront import World, live_api  # noqa: E402
from training.config import default_config  # noqa: E402
from training.jobs import train  # noqa: E402

EXP = "search-ranker"


def _ci(d: np.ndarray) -> tuple[float, float]:
    """95 % interval of the mean of paired differences (normal approximation)."""
    half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--items", type=int, default=1000)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--bootstrap", type=int, default=1500)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t_all = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_all:6.0f} s] {msg}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="search-ranker-") as tmp:
        s = Settings(home=Path(tmp), environment="test", search_backend="embedded",
                     model_poll_seconds=0, admin_api_key=SecretStr(secrets.token_hex(16)))
        generate(ShopSpec(n_users=args.users, n_items=args.items, n_events=args.events,
                          seed=args.seed), s.data_dir, progress=False)
        cfg = default_config(s.data_dir)
        cfg.train.holdout_metrics = False
        say("shop generated; training the models")
        rep = train(cfg, s.models_dir, events_dir=s.events_dir,
                    promote=True)
        versions = {m.name: m.version for m in rep.models}
        ranker, _ = train_ranker_step(s, cfg, versions=versions, promote=True,
                                      bootstrap_sessions=args.bootstrap, say=say)
        backend = open_backend(s)
        try:
            index_catalog(backend, s.data_dir / "items.jsonl",
                          events_path=s.data_dir / "events.parquet")
        finally:
            backend.close()
        items = list(iter_items(s.data_dir / "items.jsonl"))
        queries = make_queries(items, args.queries, seed=7)
        world = World.from_shop(s.data_dir)
        pool = np.flatnonzero(world.consent)
        # the shoppers of each variant, by the experiment's own assignment (first half: off)
        off_users = [u for u in pool if bucket(EXP, world.user_ids[u]) < 0.5]
        on_users = [u for u in pool if bucket(EXP, world.user_ids[u]) >= 0.5]
        rng = np.random.default_rng(args.seed)
        say(f"ranker {ranker.version}; {len(queries)} queries, one shopper of each variant")
        scores: dict[str, list[float]] = {"off": [], "on": []}
        clicks: dict[str, list[float]] = {"off": [], "on": []}
        moved = 0
        with live_api(s, search=True) as client:
            r = client.post("/v1/experiments", json={
                "id": EXP, "name": "learned ranker on search", "surfaces": ["search"],
                "variants": [
                    {"name": "off", "share": 50,
                     "overrides": {"model_versions": {"ranker": "off"}}},
                    {"name": "on", "share": 50,
                     "overrides": {"model_versions": {"ranker": "current"}}}]})
            assert r.status_code < 300, r.text
            assert client.post(f"/v1/experiments/{EXP}/start").status_code < 300
            for q in queries:
                got = {}
                for name, users in (("off", off_users), ("on", on_users)):
                    u = int(rng.choice(users))
                    body = client.get("/v1/search", params={
                        "q": q.text, "user_id": world.user_ids[u], "size": 10}).json()
                    ids = [h["item_id"] for h in body["hits"]]
                    got[name] = ids
                    scores[name].append(ndcg_at_k(ids, q.relevant, 10))
                    reacted = world.react(u, ids, datetime.now(UTC), rng)
                    shown = sum(1 for *_, t in reacted if t == "impression")
                    clicks[name].append(sum(1 for *_, t in reacted if t == "click")
                                        / max(shown, 1))
                moved += got["off"] != got["on"]
            client.post(f"/v1/experiments/{EXP}/stop")
    nd = {k: np.asarray(v) for k, v in scores.items()}
    ck = {k: np.asarray(v) for k, v in clicks.items()}
    diff, cdiff = nd["on"] - nd["off"], ck["on"] - ck["off"]
    rows = {
        "ndcg@10": {"off": float(nd["off"].mean()), "on": float(nd["on"].mean()),
                    "diff": float(diff.mean()), "ci": _ci(diff)},
        "simulated ctr": {"off": float(ck["off"].mean()), "on": float(ck["on"].mean()),
                          "diff": float(cdiff.mean()), "ci": _ci(cdiff)},
    }
    print(f"search re-ranked by the learned ranker ({ranker.version}, trained on "
          f"{ranker.n_lists:,} feed lists): {len(queries)} queries, a shopper of each variant")
    print(f"{'measure':<16}{'ranker off':>12}{'ranker on':>12}{'on − off':>10}   95 % interval")
    for k, r in rows.items():
        print(f"{k:<16}{r['off']:>12.4f}{r['on']:>12.4f}{r['diff']:>+10.4f}   "
              f"[{r['ci'][0]:+.4f}, {r['ci'][1]:+.4f}]")
    print(f"queries whose two answers differ: {moved}; time {time.perf_counter() - t_all:.0f} s")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "search_ranker.json").write_text(json.dumps({
        "args": vars(args), "ranker_version": ranker.version, "ranker_lists": ranker.n_lists,
        "rows": rows, "queries_differing": moved,
        "at": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
