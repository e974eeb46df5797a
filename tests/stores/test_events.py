"""Contract of EventStore, on the embedded event log and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pyarrow as pa

from data.event_table import EVENT_SCHEMA
from stores import open_stores
from tests.stores.conftest import NOW, Backend, event


def test_append_is_idempotent_within_and_across_batches(backend: Backend) -> None:
    s = backend.open()
    first = s.events.append([event(1), event(2), event(1), event(3)])
    assert first.accepted == ("e1", "e2", "e3")
    assert first.duplicates == ("e1",)
    again = s.events.append([event(3), event(4)])
    assert again.accepted == ("e4",)
    assert again.duplicates == ("e3",)
    assert s.events.count() == 4
    assert s.events.contains("e4") and not s.events.contains("e5")


def test_accepted_events_survive_reopening(backend: Backend) -> None:
    s = backend.open()
    s.events.append([event(i, item=f"i{i}", type="purchase", query="連衣裙", position=i)
                     for i in range(5)])
    s.close()
    again = backend.open()
    assert again.events.count() == 5
    got = {e.event_id: e for e in again.events.iter_events()}
    assert got["e3"].item_id == "i3" and got["e3"].type == "purchase"
    assert got["e3"].context.query == "連衣裙" and got["e3"].context.position == 3
    # a retry after the reopen is still a duplicate
    assert again.events.append([event(2)]).duplicates == ("e2",)


def test_read_back_in_time_order_as_the_event_table(backend: Backend) -> None:
    s = backend.open()
    # posted out of order, over three days
    times = [NOW - timedelta(days=2), NOW, NOW - timedelta(hours=1), NOW - timedelta(days=1)]
    s.events.append([event(i, at=t, request_id=f"r{i}") for i, t in enumerate(times)])
    table = s.events.read_table()
    assert table.schema.equals(EVENT_SCHEMA)
    ts = table.column("timestamp").to_pylist()
    assert ts == sorted(times)
    assert table.column("event_id").to_pylist() == ["e0", "e3", "e2", "e1"]
    assert table.column("request_id").to_pylist() == ["r0", "r3", "r2", "r1"]
    assert [e.event_id for e in s.events.iter_events()] == ["e0", "e3", "e2", "e1"]
    # days are selected inclusively by their UTC date
    recent = s.events.read_table(since=(NOW - timedelta(days=1)).date(), until=NOW)
    assert set(recent.column("event_id").to_pylist()) == {
        f"e{i}" for i, t in enumerate(times) if t.date() >= (NOW - timedelta(days=1)).date()
    }
    assert isinstance(recent, pa.Table)


def test_recent_reads_the_last_events_oldest_first(backend: Backend) -> None:
    s = backend.open()
    assert s.events.recent(5) == []
    s.events.append([event(i, at=NOW - timedelta(minutes=10 - i)) for i in range(6)])
    s.events.append([event(9, at=NOW)])
    assert [e.event_id for e in s.events.recent(3)] == ["e4", "e5", "e9"]
    assert [e.event_id for e in s.events.recent(100)] == ["e0", "e1", "e2", "e3", "e4", "e5",
                                                          "e9"]
    assert s.events.recent(0) == []


def test_erase_user_removes_their_events_and_ids(backend: Backend) -> None:
    s = backend.open()
    s.events.append([event(1, user="u1"), event(2, user="u2"), event(3, user="u1")])
    assert s.events.erase_user("u1") == 2
    assert [e.event_id for e in s.events.iter_events()] == ["e2"]
    assert not s.events.contains("e1")
    assert s.events.append([event(1, user="u1")]).accepted == ("e1",)


def _append_range(backend: Backend, start: int, stop: int, queue: multiprocessing.Queue) -> None:
    s = open_stores(backend.database_url, backend.redis_url, backend.home,
                    redis_prefix=backend.prefix)
    accepted: list[str] = []
    step = 10 if start < stop else -10  # the second writer goes backwards, batches reversed
    for i in range(start, stop, step):
        ids = range(i, min(i + step, stop)) if step > 0 else range(i, max(i + step, stop), -1)
        accepted += s.events.append([event(j) for j in ids]).accepted
    s.close()
    queue.put(accepted)


def test_two_processes_append_overlapping_batches(backend: Backend) -> None:
    backend.open()  # create the stores before the writers race
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_append_range, args=(backend, a, b, queue))
             for a, b in ((0, 120), (179, 59))]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    accepted = results[0] + results[1]
    # every id stored exactly once, whichever process got it
    assert sorted(accepted) == sorted(f"e{i}" for i in range(180))
    assert backend.open().events.count() == 180
