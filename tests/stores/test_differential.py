"""The same random workload through the embedded and the shared stores gives the same answers."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest

from data.models import Item, User
from stores import ServedList, ShopperPolicy, StoreOptions, open_stores
from tests.stores.conftest import NOW, event

TYPES = ["view", "view", "view", "click", "add_to_cart", "purchase", "refund", "impression"]


@pytest.mark.servers
def test_random_workload_agrees(
    pg_url: str, redis_server: str, redis_prefix: str, tmp_path: Path
) -> None:
    opts = StoreOptions(shopper=ShopperPolicy(history_size=7))
    lite = open_stores(None, None, tmp_path / "lite", options=opts)
    shared = open_stores(pg_url, redis_server, tmp_path / "shared", options=opts,
                         redis_prefix=redis_prefix)
    rng = random.Random(7)
    try:
        for step in range(40):
            batch = [
                event(f"{step}-{k}", user=f"u{rng.randrange(5)}", item=f"i{rng.randrange(12)}",
                      type=rng.choice(TYPES), at=NOW - timedelta(minutes=rng.randrange(600)))
                for k in range(rng.randrange(1, 6))
            ]
            items = [Item(item_id=f"i{rng.randrange(12)}", title="t", price=rng.randrange(100))
                     for _ in range(rng.randrange(3))]
            gone = [f"i{rng.randrange(12)}" for _ in range(rng.randrange(2))]
            users = [User(user_id=f"u{rng.randrange(5)}", consent=rng.random() < 0.8,
                          attributes={"segment": rng.choice("abc")}) for _ in range(2)]
            erase = f"u{rng.randrange(5)}" if rng.random() < 0.1 else None
            served = [ServedList(f"r{step}-{k}", NOW - timedelta(days=rng.randrange(4)), "feed",
                                 f"u{rng.randrange(5)}", items=(f"i{k}",)) for k in range(2)]
            for s in (lite, shared):
                s.events.append(batch)
                s.shopper.record(batch)
                s.catalog.upsert(items)
                s.catalog.delete(gone)
                s.users.upsert(users)
                s.requests.record(served)
                if erase:
                    s.users.erase(erase)
                    s.events.erase_user(erase)
                    s.shopper.forget_user(erase)
                    s.requests.forget_user(erase)
        for u in range(5):
            assert lite.shopper.profile(f"u{u}") == shared.shopper.profile(f"u{u}")
        top_lite = lite.shopper.live_top(20)
        top_shared = shared.shopper.live_top(20)
        assert [i for i, _ in top_lite] == [i for i, _ in top_shared]
        for (_, a), (_, b) in zip(top_lite, top_shared, strict=True):
            assert a == pytest.approx(b, rel=1e-9)
        a, b = lite.events.read_table(), shared.events.read_table()
        assert a.column("timestamp").equals(b.column("timestamp"))  # both in time order
        # events of one instant: arrival order (embedded) or id order (PostgreSQL)
        by = [("timestamp", "ascending"), ("event_id", "ascending")]
        assert a.sort_by(by).to_pylist() == b.sort_by(by).to_pylist()
        assert lite.catalog.cursor() == shared.catalog.cursor()
        assert lite.catalog.changes_since(0) == shared.catalog.changes_since(0)
        assert list(lite.users.iter_users()) == list(shared.users.iter_users())
        assert set(lite.users.erasures()) == set(shared.users.erasures())
        assert lite.requests.days() == shared.requests.days()
        # (lists served at one instant come in either order)
        assert sorted(lite.requests.recent(), key=lambda r: r.request_id) == sorted(
            shared.requests.recent(), key=lambda r: r.request_id)
    finally:
        lite.close()
        shared.close()
