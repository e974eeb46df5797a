"""Contract of ShopperStateStore and FeedPageStore (embedded SQLite, Redis)."""

from __future__ import annotations

import multiprocessing
import time
from datetime import timedelta

import pytest

from stores import ShopperPolicy, open_stores
from stores.protocols import FeedPageStore, ShopperStateStore
from stores.records import ShopperProfile
from tests.stores.conftest import NOW, Backend, event


def test_recent_history_is_newest_first_and_bounded(backend: Backend) -> None:
    s = backend.open(shopper=ShopperPolicy(history_size=5))
    assert isinstance(s.shopper, ShopperStateStore)
    s.shopper.record([event(n, item=f"i{n}", type="impression" if n == 3 else "view")
                      for n in range(8)])
    s.shopper.record([event(9, item="i9", type="add_to_cart"), event(10, user="u2", item="x")])
    # impressions stay out; 5 kept
    assert s.shopper.recent("u1") == [("i9", "add_to_cart"), ("i7", "view"), ("i6", "view"),
                                      ("i5", "view"), ("i4", "view")]
    assert s.shopper.recent("u1", limit=2) == [("i9", "add_to_cart"), ("i7", "view")]
    assert s.shopper.recent("u2") == [("x", "view")]
    assert s.shopper.recent("nobody") == []
    s.close()
    assert backend.open(shopper=ShopperPolicy(history_size=5)).shopper.recent("u1")[0] == (
        "i9", "add_to_cart")


def test_purchases_refunds_and_forgetting_a_user(backend: Backend) -> None:
    shopper = backend.open().shopper
    shopper.record([event(1, item="a", type="purchase"), event(2, item="b", type="purchase"),
                    event(3, item="a", type="refund"), event(4, item="c", type="view")])
    assert shopper.purchased("u1") == frozenset({"b"})
    assert ("b", "purchase") in shopper.recent("u1")
    both = shopper.profile("u1", limit=2)
    assert both.recent == tuple(shopper.recent("u1", limit=2)) == (("c", "view"), ("b", "purchase"))
    assert both.purchased == frozenset({"b"})
    assert shopper.profile("nobody") == ShopperProfile()
    shopper.forget_user("u1")
    assert shopper.purchased("u1") == frozenset() and shopper.recent("u1") == []


def test_live_counts_weigh_types_and_decay(backend: Backend) -> None:
    policy = ShopperPolicy(live_half_life_hours=1.0)
    shopper = backend.open(shopper=policy).shopper
    day = timedelta(days=1)
    shopper.record(
        [event(1, item="old", type="purchase", at=NOW - day - timedelta(minutes=1))]  # 24 h older
        + [event(10 + n, item="viewed", type="view") for n in range(2)]  # 1 + 1
        + [event(20, item="bought", type="purchase")]  # 5
        + [event(30, item="shown", type="impression")]  # not counted
    )
    top = shopper.live_top(10)
    assert [i for i, _ in top] == ["bought", "viewed", "old"]
    assert top[0][1] == 1.0
    assert top[1][1] == pytest.approx(2 / 5, rel=1e-6)
    assert top[2][1] == pytest.approx(1 / 2**24, rel=1e-3)
    scores = shopper.live_scores(["viewed", "shown", "bought"])
    assert scores == {"viewed": pytest.approx(0.4, rel=1e-6), "bought": 1.0}
    shopper.forget_items(["bought"])
    assert shopper.live_top(1)[0][0] == "viewed"


def test_an_import_of_past_events_leaves_live_counts_alone(backend: Backend) -> None:
    shopper = backend.open().shopper
    shopper.record([event(1, item="a", type="purchase"), event(2, item="b", type="view")],
                   live=False)
    assert shopper.recent("u1") == [("b", "view"), ("a", "purchase")]
    assert shopper.purchased("u1") == frozenset({"a"})
    assert shopper.live_top(10) == [] and shopper.live_scores(["a", "b"]) == {}
    shopper.record([event(3, item="b", type="view")])
    assert [i for i, _ in shopper.live_top(10)] == ["b"]


def test_live_counts_keep_the_hottest_items(backend: Backend) -> None:
    shopper = backend.open(shopper=ShopperPolicy(live_max_items=20)).shopper
    for batch in range(3):  # embedded trims on a schedule, Redis on every write
        shopper.record([event(f"{batch}-{n}", item=f"i{n}", type="view")
                        for n in range(100) for _ in range(1 + (n >= 90))])
    if backend.kind == "embedded":
        for _ in range(256):
            shopper.record([event("x", item="i99", type="view")])
    top = shopper.live_top(1000)
    assert len(top) <= 20
    assert {f"i{n}" for n in range(90, 100)} <= {i for i, _ in top}


def _record_views(backend: Backend, user: str, queue: multiprocessing.Queue) -> None:
    s = open_stores(backend.database_url, backend.redis_url, backend.home,
                    redis_prefix=backend.prefix)
    for n in range(30):
        s.shopper.record([event(f"{user}{n}", user=user, item=f"{user}-{n}")])
    s.close()
    queue.put(user)


def test_two_processes_record_at_once(backend: Backend) -> None:
    reader = backend.open()
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_record_views, args=(backend, u, queue)) for u in ("a", "b")]
    for p in procs:
        p.start()
    assert sorted(queue.get(timeout=60) for _ in procs) == ["a", "b"]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for u in ("a", "b"):
        assert reader.shopper.recent(u, limit=3) == [(f"{u}-{n}", "view") for n in (29, 28, 27)]
    assert len(reader.shopper.live_top(100)) == 60


# -- feed pages -------------------------------------------------------------------------


def test_feed_pages_are_write_once(backend: Backend) -> None:
    s = backend.open()
    pages = s.feed_pages
    assert isinstance(pages, FeedPageStore)
    assert pages.get("r1|u1|") is None
    assert pages.put("r1|u1|", b"first", user_id="u1") == b"first"
    assert pages.put("r1|u1|", b"second", user_id="u1") == b"first"
    assert pages.put("r2|u1|", b"\x00\xffbinary", user_id="u1") == b"\x00\xffbinary"
    assert pages.put("r3|u2|", b"other", user_id="u2") == b"other"
    s.close()
    pages = backend.open().feed_pages
    assert pages.get("r1|u1|") == b"first"
    assert pages.forget_user("u1") == 2
    assert pages.get("r1|u1|") is None and pages.get("r2|u1|") is None
    assert pages.get("r3|u2|") == b"other"


def test_feed_pages_expire(backend: Backend) -> None:
    pages = backend.open(feed_ttl_seconds=0.3).feed_pages
    pages.put("k", b"old")
    assert pages.get("k") == b"old"
    deadline = time.monotonic() + 5
    while pages.get("k") is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the clock, not for readiness
    assert pages.get("k") is None
    assert pages.put("k", b"new") == b"new"  # an expired key may be written again


def test_embedded_feed_pages_are_bounded(tmp_path: object) -> None:
    from pathlib import Path

    from stores.sqlite.hot import SqliteFeedPages

    pages = SqliteFeedPages(Path(str(tmp_path)) / "f.sqlite", ttl_seconds=60, max_entries=50,
                            timeout=1.0)
    for n in range(300):
        pages.put(f"k{n}", b"x")
    assert 50 <= len(pages) <= 55  # pruned every max_entries // 10 writes
    assert pages.get("k299") == b"x" and pages.get("k0") is None
    pages.close()


def _put_page(backend: Backend, body: bytes, start: multiprocessing.Event,
              queue: multiprocessing.Queue) -> None:
    s = open_stores(backend.database_url, backend.redis_url, backend.home,
                    redis_prefix=backend.prefix)
    start.wait(30)
    queue.put([s.feed_pages.put(f"race{n}|u1|", body, user_id="u1") for n in range(30)])
    s.close()


def test_two_processes_ranking_one_key_serve_one_list(backend: Backend) -> None:
    pages = backend.open().feed_pages
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = ctx.Queue()
    start = ctx.Event()
    procs = [ctx.Process(target=_put_page, args=(backend, body, start, queue))
             for body in (b"from A", b"from B")]
    for p in procs:
        p.start()
    start.set()
    a, b = queue.get(timeout=60), queue.get(timeout=60)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    # whoever wrote first, both processes were handed the same list for every key
    assert a == b
    assert [pages.get(f"race{n}|u1|") for n in range(30)] == a
