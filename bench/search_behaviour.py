"""What the behaviour vectors add for queries no title matches (`search.behaviour`).

    .venv/bin/python bench/search_behaviour.py            # 10k items, 100k events

A synthetic shop (10k items, 2k shoppers, ~100k events, generated once into ``--shop``)
gets a few searches for shop slang that no title, category or variant holds (露營好物 for
tents, 追劇零嘴 for beef jerky, …): each slang query is searched ``--searches`` times, each
search ending in a click on one of the three most browsed items of its leaf (what shoppers
pick). Those clicks are added to the shop's own event log; the sessions of the generated
log (shoppers browsing within their intent leaf and its complement, e.g. tents with hiking
backpacks) are what the co-occurrence vectors learn from.

Each slang query is judged by its leaf (every item of the leaf is relevant) and searched
through `search.engine.SearchEngine` on the embedded backend three ways: behaviour off,
clicked items only (``behaviour_k`` = 3: the search → click pairs), clicked items and their
session neighbours (the default). NDCG@10 and hits per query; a table on stdout and
``bench/results/search_behaviour.json``. Queries that the catalog's words do match (with
behaviour off) are reported and left out: they are not what this measures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402

from data.event_table import EVENT_SCHEMA  # noqa: E402
from data.loaders import iter_items, read_events_table  # noqa: E402
from search.analysis import Analyzer  # noqa: E402
from search.behaviour import EVENT_COLUMNS  # noqa: E402
from search.engine import EngineConfig, SearchEngine  # noqa: E402
from search.query import SearchRequest  # noqa: E402
from search.relevance import ndcg_at_k  # noqa: E402
from search.tantivy_backend import TantivyBackend  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "search_behaviour.json"
SLANG = {
    "露營好物": "帳篷",
    "重訓入門": "啞鈴",
    "追劇零嘴": "牛肉乾",
    "提神飲品": "咖啡豆",
    "約會必備": "口紅",
    "新生兒必買": "紙尿褲",
    "打球裝備": "籃球",
    "熬夜加班": "辦公椅",
    "上班通勤": "藍牙耳機",
    "送禮首選": "水果禮盒",
    "出國旅行": "保溫杯",
    "夏日約會": "連衣裙",
}
"""Shop slang → the leaf shoppers click for it."""


def ensure_shop(shop: Path) -> Path:
    if not (shop / "items.jsonl").is_file():
        from data.synthetic import ShopSpec, generate

        print(f"generating a 10k-item shop with ~100k events in {shop} …", flush=True)
        generate(ShopSpec(n_users=2_000, n_items=10_000, n_events=100_000, seed=11), shop)
    return shop


def slang_clicks(
    items_by_leaf: dict[str, list[str]], browsed: Counter[str], searches: int, seed: int
) -> pa.Table:
    """``searches`` searches per slang query, each ending in a click on one of the three
    most browsed items of its leaf."""
    rng = random.Random(seed)
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    rows: list[dict[str, object]] = []
    for q, leaf in SLANG.items():
        top = sorted(items_by_leaf[leaf], key=lambda i: (-browsed[i], i))[:3]
        for s in range(searches):
            rows.append(
                {
                    "event_id": f"slang-{len(rows)}",
                    "user_id": f"slang-u{rng.randrange(10_000)}",
                    "item_id": rng.choice(top),
                    "type": "click",
                    "timestamp": t0 + timedelta(minutes=len(rows)),
                    "session_id": f"slang-{q}-{s}",
                    "query": q,
                    "surface": "search",
                }
            )
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shop", type=Path, default=ROOT / "var" / "bench" / "shop-behaviour")
    ap.add_argument("--searches", type=int, default=5, help="logged searches per slang query")
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    shop = ensure_shop(args.shop)
    items = list(iter_items(shop / "items.jsonl"))
    leaf_of = {i.item_id: i.category[-1] for i in items}
    by_leaf: dict[str, list[str]] = {}
    for i in items:
        by_leaf.setdefault(i.category[-1], []).append(i.item_id)
    events = read_events_table(shop / "events.parquet", columns=EVENT_COLUMNS)
    browsed = Counter(x for x in events.column("item_id").to_pylist() if x is not None)
    clicks = slang_clicks(by_leaf, browsed, args.searches, args.seed)
    log = pa.concat_tables([events, clicks.select(EVENT_COLUMNS)])
    analyzer = Analyzer.from_file(None)
    configs = {
        "behaviour off": EngineConfig(behaviour=False),
        "clicked items only": EngineConfig(behaviour_k=3),
        "clicked + session neighbours": EngineConfig(),
    }
    per_query: dict[str, dict[str, float]] = {}
    hits: dict[str, dict[str, int]] = {}
    matched_lexically: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shoprank-behaviour-") as tmp:
        backend = TantivyBackend(Path(tmp) / "index", analyzer=analyzer)
        engine = SearchEngine(backend, analyzer=analyzer, aids_root=Path(tmp) / "aids")
        engine.rebuild(items, events=log)
        beh = engine.aids().behaviour  # type: ignore[union-attr]
        for name, cfg in configs.items():
            eng = SearchEngine(backend, analyzer=analyzer, aids_root=Path(tmp) / "aids", config=cfg)
            for q, leaf in SLANG.items():
                res = eng.search(SearchRequest(text=q, size=10))
                if name == "behaviour off" and res.total:
                    matched_lexically.append(q)
                ranked = [h.item_id for h in res.hits]
                relevant = {i: 1 for i in by_leaf[leaf]}
                per_query.setdefault(q, {})[name] = round(ndcg_at_k(ranked, relevant, 10), 4)
                hits.setdefault(q, {})[name] = sum(leaf_of[i] == leaf for i in ranked)
        engine.close()
    judged = [q for q in SLANG if q not in matched_lexically]
    summary = {
        name: {
            "ndcg@10": round(statistics.fmean(per_query[q][name] for q in judged), 4),
            "leaf_hits@10": round(statistics.fmean(hits[q][name] for q in judged), 2),
            "queries_with_results": sum(per_query[q][name] > 0 for q in judged),
        }
        for name in configs
    }
    table = Table(title=f"{len(judged)} slang queries no title matches, NDCG@10 (leaf = relevant)")
    table.add_column("engine")
    for col in ("ndcg@10", "leaf_hits@10", "queries_with_results"):
        table.add_column(col, justify="right")
    for name, row in summary.items():
        table.add_row(name, *[str(v) for v in row.values()])
    Console().print(table)
    if matched_lexically:
        print("left out (the catalog's words match them):", ", ".join(matched_lexically))
    out = {
        "command": "python bench/search_behaviour.py " + " ".join(sys.argv[1:]),
        "items": len(items),
        "events": events.num_rows,
        "behaviour_items": len(beh) if beh is not None else 0,
        "searches_per_query": args.searches,
        "summary": summary,
        "per_query": per_query,
        "left_out": matched_lexically,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
