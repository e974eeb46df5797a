"""The API's answers to a fixed set of calls on a small seeded shop, recorded and checked.

A restructure must not change what the service answers. ``record`` builds a seeded shop in a
fresh home (``shoprank demo --no-serve``: generate, train, index), replays a fixed list of a few
thousand in-process calls (recommendations, feed pages 1 and 2, similar, bought-together,
trending, search GET/POST with filters and facets, autocomplete, rule previews, KPI reports and
some bad input) and writes the answers to a JSON file; ``check`` replays the same calls and
prints the calls whose answers differ. Request ids, timings and model version names (they hold
the training time) are left out of the answers.

    .venv/bin/python bench/answers.py record bench/answers/baseline.json.gz
    .venv/bin/python bench/answers.py check bench/answers/baseline.json.gz

The baseline was recorded on main at commit ffb4055 (after the embedded default moved onto
the stores: 33 personalized answers of the previous baseline, recorded at e6c3bf1, changed
order, because a user's recent history is now the stored one — the last 20 events of the
shop's file plus every purchase — rather than the per-process replay; docs/decisions.md).
To record it again at a commit: ``git worktree add /tmp/base <commit>`` and run ``record``
with this script from inside that tree (its imports: ``serving.app.create_app`` and the
``shoprank`` CLI). A baseline holds only while answers are meant to stay the same: a change
of ranking behaviour records a new one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repo, not bench/ (bench/search.py)

ADMIN_KEY = "answers-admin-" + "k" * 16
VERSION = re.compile(r"\b\d{8}T\d{6,9}Z-[0-9a-f]{6}\b")
DROPPED_KEYS = frozenset({"request_id", "took_ms", "elapsed_ms", "generated_at", "timing"})
SHOP = ("--users", "300", "--items", "600", "--events", "30000")

Call = tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]
"""(method, path, query params, JSON body)"""

QUERIES = ("dress", "連衣裙", "连衣裙", "帳篷", "lipstick", "手機", "red", "鞋", "coffee", "tent",
           "筆記型電腦", "laptop", "紅色", "bag", "")
PREFIXES = ("連", "手", "d", "la", "紅", "te", "co", "b")


def build_shop(home: Path) -> None:
    """Generate, train and index a small seeded shop with the project's own CLI."""
    env = dict(os.environ, SHOPRANK_HOME=str(home), SHOPRANK_ADMIN_API_KEY=ADMIN_KEY,
               SHOPRANK_SEARCH_BACKEND="embedded", SHOPRANK_LOG_LEVEL="WARNING",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    shoprank = Path(sys.executable).with_name("shoprank")
    subprocess.run([str(shoprank), "demo", "--no-serve", *SHOP], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def calls(client: Any) -> Iterator[Call]:
    """The fixed calls; feed page 2 needs page 1's request id, so this asks the client."""
    users = [f"u{i}" for i in range(1, 301)]
    items = [f"i{i}" for i in range(1, 401)]
    for u in users:
        yield "GET", "/v1/recommendations", {"user_id": u, "n": 10}, None
        yield (
            "GET",
            "/v1/recommendations",
            {"user_id": u, "n": 5, "exclude_purchased": "true"},
            None,
        )
        first = {"user_id": u, "size": 10, "debug": "true" if u.endswith("7") else "false"}
        yield "GET", "/v1/feed", first, None
        page1 = client.get("/v1/feed", params={"user_id": u, "size": 10}).json()
        yield "GET", "/v1/feed", {"user_id": u, "size": 10, "page": 2,
                                  "request_id": page1.get("request_id", "")}, None
    for i in range(0, len(items), 3):
        yield "GET", "/v1/recommendations", {"history": ",".join(items[i:i + 3]), "n": 8}, None
    for it in items:
        yield "GET", f"/v1/items/{it}/similar", {"n": 5}, None
        yield "GET", f"/v1/items/{it}/bought-together", {"n": 5}, None
    categories = sorted({c for it in items for c in [_top_category(client, it)] if c})
    yield "GET", "/v1/trending", {"n": 10}, None
    for c in categories:
        yield "GET", "/v1/trending", {"n": 10, "category": c}, None
        yield "GET", "/v1/recommendations", {"user_id": "u3", "n": 5, "category": c}, None
    for q in QUERIES:
        yield "GET", "/v1/search", {"q": q}, None
        for u in users[:12]:
            yield "GET", "/v1/search", {"q": q, "user_id": u}, None
        for sort in ("price_asc", "price_desc", "newest", "popularity"):
            yield "POST", "/v1/search", None, {"text": q, "sort": sort, "size": 10}
        yield "POST", "/v1/search", None, {
            "text": q, "filters": [{"field": "price", "lte": 1000}], "facets": ["brand", "price"]}
        yield "POST", "/v1/search", None, {"text": q, "page": 2, "size": 5, "facets": ["brand"]}
        yield "POST", "/v1/search", None, {
            "text": q, "filters": [{"field": "in_stock", "value": True}], "user_id": "u5"}
    for p in PREFIXES:
        yield "GET", "/v1/search/autocomplete", {"q": p}, None
    for u in users[:10]:
        for rule in _rules():
            yield "POST", "/v1/rules/preview", None, {"rule": rule, "user_id": u, "k": 10,
                                                       "sample_size": 4}
    yield "GET", "/v1/reports/kpis", None, None
    for metric in ("ctr", "conversion_rate", "revenue_per_user"):
        yield "GET", "/v1/reports/kpis", {"metric": metric, "start": "2020-01-01"}, None
    # bad input: the error answers are part of the behaviour
    yield "GET", "/v1/recommendations", {"user_id": "u1", "n": 0}, None
    yield "GET", "/v1/feed", {"user_id": "u1", "page": 2, "request_id": "nope"}, None
    yield "POST", "/v1/search", None, {"text": "x", "filters": [{"field": "nope"}]}
    yield "GET", "/v1/items/nope/similar", None, None
    yield "POST", "/v1/rules/preview", None, {"rule": {"id": "x"}}


def _rules() -> list[dict[str, Any]]:
    return [
        {"id": "pin-tent", "name": "pin", "condition": {
            "contexts": ["search"], "query": {"text": "帳篷", "match": "contains"}},
         "actions": [{"type": "pin", "pins": [{"item_id": "i7", "position": 1}]}]},
        {"id": "boost-cat", "name": "boost", "condition": {"contexts": ["feed"]},
         "actions": [{"type": "boost", "filter": {"price_max": 500}, "weight": 3.0}]},
        {"id": "bury-i1", "name": "bury", "condition": {"contexts": ["recommendations"]},
         "actions": [{"type": "bury", "filter": {"item_ids": ["i1", "i2"]}, "weight": 1.0}]},
    ]


_CATEGORY: dict[str, str | None] = {}


def _top_category(client: Any, item_id: str) -> str | None:
    if item_id not in _CATEGORY:
        r = client.get(f"/v1/catalog/items/{item_id}")
        cat = r.json().get("category") if r.status_code == 200 else None
        _CATEGORY[item_id] = (cat.split(" > ")[0] if isinstance(cat, str)
                              else cat[0] if cat else None)
    return _CATEGORY[item_id]


def clean(value: Any) -> Any:
    """The answer without request ids, timings and version names."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if k not in DROPPED_KEYS}
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, str):
        return VERSION.sub("<version>", value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def answer_all(home: Path) -> dict[str, Any]:
    os.environ.update(SHOPRANK_HOME=str(home), SHOPRANK_ADMIN_API_KEY=ADMIN_KEY,
                      SHOPRANK_SEARCH_BACKEND="embedded", SHOPRANK_MODEL_POLL_SECONDS="0",
                      SHOPRANK_LOG_LEVEL="WARNING")
    from fastapi.testclient import TestClient

    from serving.app import create_app

    answers: dict[str, Any] = {}
    with TestClient(create_app(), headers={"X-API-Key": ADMIN_KEY}) as client:
        for n, (method, path, params, body) in enumerate(calls(client)):
            r = client.request(method, path, params=params, json=body)
            kind = r.headers.get("content-type", "")
            content = clean(r.json()) if kind.startswith("application/json") else len(r.content)
            shown = {k: "<page 1>" if k == "request_id" else v for k, v in (params or {}).items()}
            key = f"{n:05d} {method} {path} {json.dumps(shown or body, ensure_ascii=False)}"
            answers[key] = {"status": r.status_code, "body": content}
    return answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=("record", "check"))
    ap.add_argument("file", type=Path)
    ap.add_argument("--show", type=int, default=5, help="differing calls to print")
    args = ap.parse_args()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="shoprank-answers-") as tmp:
        home = Path(tmp) / "home"
        build_shop(home)
        answers = answer_all(home)
    took = time.monotonic() - t0
    if args.mode == "record":
        args.file.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(answers, ensure_ascii=False, sort_keys=True).encode()
        args.file.write_bytes(gzip.compress(text, mtime=0) if args.file.suffix == ".gz" else text)
        print(f"recorded {len(answers)} answers to {args.file} in {took:.0f} s")
        return
    raw = args.file.read_bytes()
    expected = json.loads(gzip.decompress(raw) if args.file.suffix == ".gz" else raw)
    differ = [k for k in expected if answers.get(k) != expected[k]]
    extra = [k for k in answers if k not in expected]
    print(f"{len(answers)} calls, {len(differ)} differ, {len(extra)} new, in {took:.0f} s")
    for k in differ[: args.show]:
        print(f"DIFF {k}\n  expected {json.dumps(expected[k], ensure_ascii=False)[:400]}"
              f"\n  got      {json.dumps(answers.get(k), ensure_ascii=False)[:400]}")
    sys.exit(1 if differ or extra else 0)


if __name__ == "__main__":
    main()
