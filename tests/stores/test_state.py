"""Contract of UserStore, CatalogStore, RuleStore / ExperimentStore and the change feed."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from data.models import Item, User
from stores import ConflictError, Document, NotFoundError, open_stores
from stores.protocols import (
    CatalogStore,
    ChangeFeed,
    ExperimentStore,
    RuleStore,
    UserStore,
)
from stores.records import Change
from tests.stores.conftest import Backend


def item(n: int, price: float = 10.0) -> Item:
    return Item(item_id=f"i{n}", title=f"連衣裙 {n}", price=price, category=("服裝", "女裝"))


def test_bundle_implements_the_interfaces(backend: Backend) -> None:
    s = backend.open()
    assert isinstance(s.users, UserStore) and isinstance(s.catalog, CatalogStore)
    assert isinstance(s.rules, RuleStore) and isinstance(s.experiments, ExperimentStore)
    assert isinstance(s.changes, ChangeFeed)
    assert s.durable == ("embedded" if backend.kind == "embedded" else "postgresql")


# -- users ------------------------------------------------------------------------------


def test_users_upsert_get_and_survive_reopening(backend: Backend) -> None:
    s = backend.open()
    s.users.upsert([User(user_id="u1", attributes={"segment": "vip", "age": 30}),
                    User(user_id="u2", consent=False)])
    s.users.upsert([User(user_id="u1", attributes={"segment": "new"})])
    s.close()
    again = backend.open()
    u1 = again.users.get("u1")
    assert u1 is not None and u1.attributes == {"segment": "new"} and u1.consent
    assert again.users.get("u2").consent is False  # type: ignore[union-attr]
    assert again.users.get("nobody") is None
    assert set(again.users.get_many(["u1", "u2", "u3"])) == {"u1", "u2"}
    assert [u.user_id for u in again.users.iter_users()] == ["u1", "u2"]
    assert again.users.count() == 2


def test_erasure_is_recorded_with_its_time(backend: Backend) -> None:
    s = backend.open()
    s.users.upsert([User(user_id="u1"), User(user_id="u2")])
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert s.users.erase("u1") is True
    assert s.users.erase("ghost") is False
    assert s.users.get("u1") is None and s.users.count() == 1
    erased = s.users.erasures()
    assert set(erased) == {"u1", "ghost"}
    assert before <= erased["u1"] <= datetime.now(UTC) + timedelta(seconds=1)
    assert s.users.erasures(since=datetime.now(UTC) + timedelta(hours=1)) == {}
    # a user who comes back exists again; the erasure stays on record
    s.users.upsert([User(user_id="u1")])
    assert s.users.get("u1") is not None and "u1" in s.users.erasures()


# -- catalog ----------------------------------------------------------------------------


def test_catalog_change_feed_has_a_growing_cursor(backend: Backend) -> None:
    s = backend.open()
    assert s.catalog.cursor() == 0
    c1 = s.catalog.upsert([item(1), item(2), item(3)])
    c2 = s.catalog.upsert([item(2, price=99.0)])
    c3 = s.catalog.delete(["i3", "unknown"])
    assert 0 < c1 < c2 < c3 == s.catalog.cursor()
    assert s.catalog.delete(["i3"]) == c3  # deleting nothing is no change
    assert s.catalog.get("i2").price == 99.0  # type: ignore[union-attr]
    assert s.catalog.get("i3") is None and s.catalog.count() == 2
    assert [i.item_id for i in s.catalog.iter_items()] == ["i1", "i2"]
    assert set(s.catalog.get_many(["i1", "i3"])) == {"i1"}
    page = s.catalog.changes_since(0)
    # each item once, as it is now, in the order of its latest change
    assert [(c.item_id, c.item is None) for c in page.changes] == [
        ("i1", False), ("i2", False), ("i3", True)]
    assert [c.seq for c in page.changes] == sorted(c.seq for c in page.changes)
    assert page.cursor == c3
    assert s.catalog.changes_since(c3).changes == () and s.catalog.changes_since(c3).cursor == c3
    # paging
    first = s.catalog.changes_since(0, limit=2)
    rest = s.catalog.changes_since(first.cursor)
    assert [c.item_id for c in first.changes + rest.changes] == ["i1", "i2", "i3"]
    s.close()
    assert backend.open().catalog.changes_since(c2).changes[0].item_id == "i3"


def test_embedded_catalog_is_read_a_page_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stores.sqlite.state as sqlite_state

    monkeypatch.setattr(sqlite_state, "ITER_PAGE", 3)
    s = open_stores(None, None, tmp_path)
    s.catalog.upsert([item(k) for k in range(1, 11)])
    s.catalog.delete(["i3", "i7"])
    got = s.catalog.iter_items()
    assert next(got).item_id == "i1"
    # no read stays open while the caller holds the generator: a writer gets through
    s.catalog.upsert([item(11)])
    # the rest, by id: i11 sorts before the page already read (i1, i10, i2), so it is not met
    assert [i.item_id for i in got] == ["i10", "i2", "i4", "i5", "i6", "i8", "i9"]
    assert [i.item_id for i in s.catalog.iter_items()] == sorted(
        f"i{k}" for k in (1, 2, 4, 5, 6, 8, 9, 10, 11))
    s.close()


def _upsert_items(backend: Backend, start: int, queue: multiprocessing.Queue) -> None:
    s = open_stores(backend.database_url, backend.redis_url, backend.home,
                    redis_prefix=backend.prefix)
    queue.put([s.catalog.upsert([item(start + k)]) for k in range(40)])
    s.close()


def test_two_processes_write_the_catalog_without_losing_changes(backend: Backend) -> None:
    reader = backend.open()
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_upsert_items, args=(backend, start, queue)) for start in (0, 100)]
    for p in procs:
        p.start()
    # read the feed while they write: nothing may be skipped
    seen: dict[str, int] = {}
    cursor = 0
    deadline = time.monotonic() + 60
    while len(seen) < 80 and time.monotonic() < deadline:
        page = reader.catalog.changes_since(cursor, limit=7)
        for c in page.changes:
            assert c.seq > cursor
            seen[c.item_id] = c.seq
        cursor = page.cursor
    cursors = queue.get(timeout=60) + queue.get(timeout=60)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(set(cursors)) == 80  # every change got its own number
    assert len(seen) == 80 and reader.catalog.cursor() == max(cursors)


# -- rules and experiments --------------------------------------------------------------


@pytest.mark.parametrize("which", ["rules", "experiments"])
def test_documents(backend: Backend, which: str) -> None:
    s = backend.open()
    docs = s.rules if which == "rules" else s.experiments
    r0 = docs.revision()
    docs.put(Document("b", "default", '{"name": "B"}'), create=True)
    docs.put(Document("a", "summer", '{"name": "A"}'))
    assert docs.revision() > r0
    with pytest.raises(ConflictError):
        docs.put(Document("b", "default", "{}"), create=True)
    created = docs.get("b").created_at
    r1 = docs.revision()
    docs.put(Document("b", "other", '{"name": "B2"}'))
    assert docs.revision() > r1
    got = docs.get("b")
    assert (got.group, got.body, got.created_at) == ("other", '{"name": "B2"}', created)
    assert got.updated_at is not None and created is not None and got.updated_at >= created
    assert [d.doc_id for d in docs.list()] == ["a", "b"]
    assert [d.doc_id for d in docs.list("summer")] == ["a"]
    docs.delete("a")
    with pytest.raises(NotFoundError):
        docs.get("a")
    with pytest.raises(NotFoundError):
        docs.delete("a")
    # rules and experiments are separate stores
    other = s.experiments if which == "rules" else s.rules
    assert other.list() == []
    s.close()
    assert [d.doc_id for d in backend.open().__getattribute__(which).list()] == ["b"]


# -- change feed ------------------------------------------------------------------------


def _drain(sub: object, want: set[tuple[str, str]], seconds: float = 10.0) -> list[Change]:
    """Poll ``sub`` until every (topic, key) in ``want`` came, or the deadline passes."""
    got: list[Change] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got += sub.poll(timeout=0.2)  # type: ignore[attr-defined]
        seen = {(c.topic, k) for c in got for k in (c.keys or ())}
        if want <= seen:
            break
    return got


def test_a_change_through_one_store_reaches_another(backend: Backend) -> None:
    writer, reader = backend.open(), backend.open()
    sub = reader.changes.subscribe(["users", "catalog", "rules", "experiments"])
    only_rules = reader.changes.subscribe(["rules"])
    assert sub.poll(timeout=0.0) == []
    t0 = time.monotonic()
    writer.users.upsert([User(user_id="u7", consent=False)])
    cursor = writer.catalog.upsert([item(7)])
    writer.rules.put(Document("r7", "default", "{}"))
    writer.experiments.put(Document("x7", "running", "{}"))
    writer.users.erase("u8")
    want = {("users", "u7"), ("catalog", "i7"), ("rules", "r7"), ("experiments", "x7"),
            ("users", "u8")}
    got = _drain(sub, want)
    assert want <= {(c.topic, k) for c in got for k in (c.keys or ())}
    assert time.monotonic() - t0 < 5.0
    assert [c.cursor for c in got if c.topic == "catalog"] == [cursor]
    # what a subscriber is told is already visible to it
    assert reader.users.get("u7").consent is False  # type: ignore[union-attr]
    assert reader.catalog.cursor() >= cursor
    assert {c.topic for c in _drain(only_rules, {("rules", "r7")})} == {"rules"}
    sub.close()
    only_rules.close()


def test_a_bulk_change_is_announced_without_ids(backend: Backend) -> None:
    writer, reader = backend.open(), backend.open()
    sub = reader.changes.subscribe(["catalog"])
    writer.catalog.upsert([item(n) for n in range(500)])
    deadline = time.monotonic() + 10
    got: list[Change] = []
    while not got and time.monotonic() < deadline:
        got = sub.poll(timeout=0.2)
    assert got and got[0].topic == "catalog" and got[0].keys is None
    assert got[0].cursor == writer.catalog.cursor()
    sub.close()
