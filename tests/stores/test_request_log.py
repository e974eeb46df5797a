"""Contract of RequestLogStore: served lists by request id, day partitions, retention."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest

from stores import ServedList, open_stores
from tests.stores.conftest import NOW, Backend


def served(n: int, *, days_ago: float = 0, user: str | None = "u1", surface: str = "feed",
           experiment: str | None = None, variant: str | None = None) -> ServedList:
    return ServedList(
        request_id=f"r{n}", at=NOW - timedelta(days=days_ago, minutes=n), surface=surface,
        user_id=user, experiment=experiment, variant=variant,
        query="連衣裙" if surface == "search" else None,
        item_id="i0" if surface == "similar" else None,
        items=tuple(f"i{n}-{p}" for p in range(3)),
    )


def test_lookup_returns_what_was_served_with_positions(backend: Backend) -> None:
    s = backend.open()
    rows = [served(1), served(2, surface="search", experiment="x", variant="b"),
            served(3, surface="similar", user=None)]
    s.requests.record(rows)
    s.close()
    log = backend.open().requests
    got = log.lookup(["r1", "r2", "r3", "missing", "r1"])
    assert set(got) == {"r1", "r2", "r3"}
    for r in rows:
        assert got[r.request_id] == r
    assert got["r2"].items[2] == "i2-2"  # position 2
    # recording an id again replaces its row
    log.record([ServedList("r1", rows[0].at, "feed", "u1", items=("z",))])
    assert log.lookup(["r1"])["r1"].items == ("z",)
    # and within one batch, the last one wins
    log.record([ServedList("r1", rows[0].at, "feed", "u1", items=(str(n),)) for n in range(3)])
    assert log.lookup(["r1"])["r1"].items == ("2",)


def test_item_ids_come_back_as_written_whatever_they_hold(backend: Backend) -> None:
    # the shared log sends each row's items as the text of an array: every character that
    # means something there (quotes, backslashes, commas, braces, spaces, NULL) is data
    odd = ('a"b', "c\\d", "e,f", "{g}", " h ", "NULL", "", "連衣裙", "\\\"", "i\tj")
    rows = [served(1), ServedList("r2", NOW, "feed", "u2", items=odd),
            ServedList("r3", NOW, "similar", None, item_id="i0", items=())]
    log = backend.open().requests
    log.record(rows)
    got = log.lookup(["r1", "r2", "r3"])
    assert [got[r.request_id] for r in rows] == rows
    assert got["r2"].items[3] == "{g}" and len(got["r2"].items) == len(odd)


def test_lookup_columns_and_recent(backend: Backend) -> None:
    log = backend.open().requests
    log.record([served(1, experiment="x", variant="a"), served(2, experiment="x", variant="b"),
                served(3, surface="search"), served(4, days_ago=1, experiment="x", variant="a")])
    cols = log.lookup_columns(["r1", "r2", "r3", "r4", "nope"], experiment="x",
                              columns=("request_id", "variant"))
    assert sorted(zip(cols["request_id"], cols["variant"], strict=True)) == [
        ("r1", "a"), ("r2", "b"), ("r4", "a")]
    all_cols = log.lookup_columns(["r3"])
    assert all_cols["surface"] == ["search"] and all_cols["user_id"] == ["u1"]
    with pytest.raises(ValueError, match="columns"):
        log.lookup_columns(["r1"], columns=("items",))
    assert [r.request_id for r in log.recent()] == ["r1", "r2", "r3", "r4"]  # newest first
    assert [r.request_id for r in log.recent("search")] == ["r3"]
    assert [r.request_id for r in log.recent(limit=2)] == ["r1", "r2"]


def test_forget_user_anonymizes_their_rows(backend: Backend) -> None:
    log = backend.open().requests
    log.record([served(1), served(2, surface="search"), served(3, user="u2"),
                served(4, days_ago=2)])
    assert log.forget_user("u1", served_between=(NOW - timedelta(days=1), NOW)) == 2
    got = log.lookup(["r1", "r2", "r3", "r4"])
    assert got["r2"].user_id is None and got["r2"].query is None
    assert got["r2"].items == served(2).items  # the impressions still count
    assert got["r3"].user_id == "u2" and got["r4"].user_id == "u1"
    assert log.forget_user("u1") == 1
    assert log.lookup(["r4"])["r4"].user_id is None


def test_retention_drops_old_day_partitions(backend: Backend) -> None:
    log = backend.open(request_keep_days=3).requests
    log.record([served(n, days_ago=d) for n, d in enumerate([0, 1, 2.5, 5, 9])])
    days = log.days()
    assert len(days) == 5 and days == sorted(days)
    assert log.prune(NOW) == 2  # the days more than 3 days before now (5 and 9 days ago)
    assert log.days() == days[2:]
    assert set(log.lookup([f"r{n}" for n in range(5)])) == {"r0", "r1", "r2"}
    assert log.prune(NOW) == 0
    # a late row of a dropped day makes its partition again
    log.record([served(9, days_ago=9)])
    assert "r9" in log.lookup(["r9"])


def _record_day(backend: Backend, worker: int, queue: multiprocessing.Queue) -> None:
    s = open_stores(backend.database_url, backend.redis_url, backend.home,
                    redis_prefix=backend.prefix)
    for n in range(20):  # both start on days no partition exists for yet
        s.requests.record([served(worker * 100 + n, days_ago=n % 4)])
    s.close()
    queue.put(worker)


def test_two_processes_log_into_new_days_at_once(backend: Backend) -> None:
    log = backend.open().requests
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_record_day, args=(backend, w, queue)) for w in (1, 2)]
    for p in procs:
        p.start()
    assert sorted(queue.get(timeout=60) for _ in procs) == [1, 2]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    written = [served(w * 100 + n, days_ago=n % 4) for w in (1, 2) for n in range(20)]
    assert log.days() == sorted({r.at.date() for r in written})  # 4 or 5 days: minutes count
    assert len(log.lookup([r.request_id for r in written])) == 40
