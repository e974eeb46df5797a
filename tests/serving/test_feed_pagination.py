"""Stable feed pagination: ranked lists in the feed page store (serving/feed_pages.py) and
`GET /v1/feed` served by two worker processes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from core.errors import StorageUnavailableError
from data.catalog import Catalog
from ranking.hooks import Assignment
from ranking.pipeline import Ranked
from ranking.types import RankContext, Reason, ScoredItem
from serving.feed_pages import StoreRankedLists, decode_ranked, encode_ranked
from stores.sqlite.hot import SqliteFeedPages
from tests.serving.conftest import Live, WorkerPool, two_worker_server

# --------------------------------------------------------------------------- helpers


def _ranked(n: int = 200, *, tag: str = "a", with_assignment: bool = True) -> Ranked:
    reasons = (
        Reason("cf", "collaborative filtering", model_version="v3"),
        Reason("rule", rule_id="r12"),
        Reason("history", related_item_id="i7"),
    )
    items = [
        ScoredItem(f"{tag}{k}", 1.0 / (k + 3) + 1e-17 * k, reasons[k % 2 : k % 3 + 1],
                   MappingProxyType({"cf": 0.5 / (k + 1), "rule:r12": 0.25}))
        for k in range(n)
    ]
    ctx = RankContext(
        surface="feed", user_id="u9", user_attributes={"tier": "gold", "age": 33, "vip": True},
        category=("服裝", "女裝"), now=datetime(2026, 11, 2, 8, 30, 1, 5, tzinfo=UTC),
        experiment="exp1", variant="b", request_id="rid-1",
    )
    assignment = Assignment("exp1", "b", MappingProxyType({"als": "v2"}),
                            MappingProxyType({"trending": 0.5}), 0.2, "summer")
    return Ranked(items, ctx, "personalized", MappingProxyType({"als": "v3", "trending": "v1"}),
                  assignment if with_assignment else None)


def _without_breakdown(r: Ranked) -> Ranked:
    return Ranked([it.replace(breakdown={}) for it in r.items], r.ctx, r.strategy,
                  r.model_versions, r.assignment)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


# --------------------------------------------------------------------------- body format


@pytest.mark.parametrize("with_assignment", [True, False])
def test_body_round_trips_exactly(with_assignment: bool) -> None:
    r = _ranked(with_assignment=with_assignment)
    assert decode_ranked(encode_ranked(r, keep_breakdown=True)) == r
    assert decode_ranked(encode_ranked(r)) == _without_breakdown(r)


def test_body_is_compact_and_breakdowns_only_when_asked() -> None:
    r = _ranked()
    lean, full = encode_ranked(r), encode_ranked(r, keep_breakdown=True)
    assert b"rule:r12" not in lean and b"rule:r12" in full
    assert len(lean) < 6_000  # 200 items: ids, exact scores, reason indices
    assert lean.count(b"collaborative filtering") == 1  # a reason is written once per list


# ----------------------------------------------------------------- over the feed page store


@pytest.fixture()
def pages(tmp_path: Path) -> Iterator[SqliteFeedPages]:
    p = SqliteFeedPages(tmp_path / "feed_pages.sqlite", ttl_seconds=60.0, max_entries=100,
                        timeout=1.0)
    yield p
    p.close()


def test_first_list_wins_and_breakdowns_only_when_asked(pages: SqliteFeedPages) -> None:
    a, b = StoreRankedLists(pages), StoreRankedLists(pages)
    first, second = _ranked(tag="a"), _ranked(tag="b")
    assert a.get("k|u9|") is None
    assert a.put("k|u9|", first) is first  # stored: the caller serves its own list
    # another process ranking the same key serves the stored list, not its own
    assert b.put("k|u9|", second).items[0].item_id == "a0"
    assert b.get("k|u9|") == _without_breakdown(first)
    a.put("d|u9|", first, keep_breakdown=True)
    assert b.get("d|u9|") == first


def test_an_erasure_drops_the_users_lists_only(pages: SqliteFeedPages) -> None:
    lists = StoreRankedLists(pages)
    lists.put("r1|u9|", _ranked())
    lists.put("r2|u10|", _ranked())
    assert lists.forget_user("u9") == 1
    assert lists.get("r1|u9|") is None and lists.get("r2|u10|") is not None


def test_an_unreadable_body_is_a_miss(pages: SqliteFeedPages) -> None:
    pages.put("bad|u9|", b"\x00\x00\x00\x00{\"v\": 99}", user_id="u9")
    assert StoreRankedLists(pages).get("bad|u9|") is None  # ranked afresh


def test_feed_answers_when_the_page_store_fails(
    live: Live, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    saved = live.services.feed_cache
    live.services.feed_cache = StoreRankedLists(_Failing())
    try:
        with caplog.at_level(logging.WARNING, logger="serving.feed_pages"):
            p1 = client.get("/v1/feed", params={"user_id": "u4", "size": 10})
            assert p1.status_code == 200, p1.text
            rid = p1.json()["request_id"]
            p2 = client.get("/v1/feed",
                            params={"user_id": "u4", "size": 10, "page": 2, "request_id": rid})
            assert p2.status_code == 200, p2.text
            assert p2.json()["items"]
    finally:
        live.services.feed_cache = saved
    assert any("feed page store unavailable" in m for m in caplog.messages)


class _Failing:
    """A feed page store that does not answer (every call raises as a dead server does)."""

    def get(self, key: str) -> bytes | None:
        raise StorageUnavailableError("feed pages: connection refused")

    def put(self, key: str, body: bytes, *, user_id: str | None = None) -> bytes:
        raise StorageUnavailableError("feed pages: connection refused")

    def forget_user(self, user_id: str) -> int:
        raise StorageUnavailableError("feed pages: connection refused")

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- two workers


def _feed_counts_per_worker(metrics_dir: Path) -> dict[str, float]:
    """GET /v1/feed answers (status 200) per worker pid, from the multiprocess metric files."""
    from prometheus_client.mmap_dict import MmapedDict

    out: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            name, _sample, labels, *_rest = json.loads(key)
            if name.startswith("shoprank_requests") and labels.get("route") == "/v1/feed" \
                    and labels.get("status") == "200":
                total += value
        out[path.stem.rsplit("_", 1)[-1]] = total
    return out


@pytest.fixture()
def two_workers(restart_home: Path) -> Iterator[WorkerPool]:
    """`shoprank serve --workers 2` on the test shop, once both workers answer."""
    with two_worker_server(restart_home) as got:
        yield got


def _ids(body: dict[str, object]) -> list[str]:
    return [it["item_id"] for it in body["items"]]  # type: ignore[attr-defined, index]


@pytest.mark.slow
def test_pages_never_repeat_across_two_workers(
    two_workers: WorkerPool, restart_home: Path
) -> None:
    """Page 1, then the user's profile changes (views in another category, posted to both
    workers), then pages 2..5 over new connections: one list, no repeats, whichever worker
    answers."""
    base, metrics_dir, _ = two_workers
    catalog = Catalog.from_jsonl(restart_home / "data" / "items.jsonl")
    by_top: dict[str, list[str]] = {}
    for item in catalog:
        if item.is_active and item.stock > 0:
            by_top.setdefault(item.category[0], []).append(item.item_id)
    size, pages = 20, 5
    stamp = datetime.now(UTC).isoformat()
    for u in range(12):
        user = f"u{u}"
        p1 = httpx.get(f"{base}/v1/feed", params={"user_id": user, "size": size}, timeout=30)
        assert p1.status_code == 200, p1.text
        rid = p1.json()["request_id"]
        shown = _ids(p1.json())
        assert len(shown) == size
        tops = {catalog.get(i).category[0] for i in shown}  # type: ignore[union-attr]
        other = sorted((t for t in by_top if t not in tops), key=lambda t: -len(by_top[t]))
        elsewhere = by_top[other[0]] if other else by_top[min(by_top, key=lambda t: len(by_top[t]))]
        for b in range(6):  # one small batch per connection: both workers' profiles change
            events = [
                {"event_id": f"pg-{user}-{b}-{k}", "user_id": user, "type": "view",
                 "item_id": elsewhere[(b * 3 + k) % len(elsewhere)], "timestamp": stamp}
                for k in range(3)
            ]
            r = httpx.post(f"{base}/v1/events", json={"events": events}, timeout=30)
            assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
        served = list(shown)
        for page in range(2, pages + 1):
            p = httpx.get(f"{base}/v1/feed", params={"user_id": user, "size": size, "page": page,
                                                   "request_id": rid}, timeout=30)
            assert p.status_code == 200, p.text
            assert p.json()["request_id"] == rid
            ids = _ids(p.json())
            assert ids, f"{user}: page {page} is empty"
            repeated = set(ids) & set(served)
            assert not repeated, f"{user}: page {page} repeats {sorted(repeated)} of earlier pages"
            served += ids
        whole = httpx.get(f"{base}/v1/feed", timeout=30, params={
            "user_id": user, "size": size * pages, "page": 1, "request_id": rid})
        assert _ids(whole.json()) == served  # the pages are slices of one ranked list
    per_worker = _feed_counts_per_worker(metrics_dir)
    # both workers answered pages
    assert sum(1 for n in per_worker.values() if n > 0) >= 2, per_worker
