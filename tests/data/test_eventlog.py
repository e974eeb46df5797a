"""The event log: durable (SIGKILL test), idempotent across restarts, torn lines, day files."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from data.eventlog import EventLog, serialize
from data.models import Event

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CHILD = Path(__file__).with_name("eventlog_child.py")
ROOT_DIR = Path(__file__).resolve().parents[2]


def ev(i: int | str, *, user: str = "u1", ts: datetime = T0, type_: str = "view") -> Event:
    return Event(event_id=f"e{i}", user_id=user, item_id="i1", type=type_, timestamp=ts)


def ids_in_files(root: Path) -> list[str]:
    out = []
    for p in sorted(root.glob("*.jsonl")):
        for line in p.read_bytes().split(b"\n"):
            if line:
                out.append(json.loads(line)["event_id"])
    return out


def test_append_read_back_partitioned_by_day(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        r = log.append(
            [
                ev(1),
                ev(2, ts=T0 + timedelta(days=1)),
                ev(3, ts=datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC)),
                Event(
                    event_id="e4",
                    user_id="u2",
                    type="search",
                    timestamp=T0,
                    context={"query": "紅色 連衣裙", "session_id": "s1"},
                ),
            ]
        )
        assert r.accepted == ("e1", "e2", "e3", "e4") and r.duplicates == ()
        assert [p.name for p in log.partitions()] == ["2026-11-23.jsonl", "2026-11-24.jsonl"]
        assert [e.event_id for e in log.iter_events()] == ["e1", "e3", "e4", "e2"]
        assert [e.event_id for e in log.iter_events(since=date(2026, 11, 24))] == ["e2"]
        search = next(e for e in log.iter_events() if e.type == "search")
        assert search.context.query == "紅色 連衣裙" and search.item_id is None
        t = log.read_table()
        assert sorted(t.column("event_id").to_pylist()) == ["e1", "e2", "e3", "e4"]
        assert "紅色 連衣裙" in t.column("query").to_pylist()
        assert log.count() == 4 and "e1" in log and "e9" not in log
    line = (tmp_path / "2026-11-23.jsonl").read_text(encoding="utf-8").splitlines()[0]
    assert json.loads(line) == {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i1",
        "type": "view",
        "timestamp": "2026-11-23T10:00:00Z",
    }


def test_idempotent_within_batch_and_across_reopen(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        r = log.append([ev(1), ev(1), ev(2)])
        assert r.accepted == ("e1", "e2") and r.duplicates == ("e1",)
    with EventLog(tmp_path) as log:
        r = log.append([ev(2), ev(3)])
        assert r.accepted == ("e3",) and r.duplicates == ("e2",)
        assert sorted(e.event_id for e in log.iter_events()) == ["e1", "e2", "e3"]
    assert sorted(ids_in_files(tmp_path)) == ["e1", "e2", "e3"]


def test_torn_last_line_is_skipped_then_cut_and_next_append_is_clean(
    tmp_path: Path, caplog
) -> None:
    with EventLog(tmp_path) as log:
        log.append([ev(1), ev(2)])
    part = tmp_path / "2026-11-23.jsonl"
    with part.open("ab") as f:
        f.write(serialize(ev(3))[:25])  # a crash in the middle of a write
    with caplog.at_level(logging.WARNING):
        # a reader (training) skips it with a warning, without needing the writer
        from data.loaders import read_events_table

        assert read_events_table(part).column("event_id").to_pylist() == ["e1", "e2"]
        assert "torn" in caplog.text
        caplog.clear()
        with EventLog(tmp_path) as log:
            assert "torn" in caplog.text
            assert [e.event_id for e in log.iter_events()] == ["e1", "e2"]
            assert log.append([ev(3), ev(4)]).accepted == ("e3", "e4")
            assert [e.event_id for e in log.iter_events()] == ["e1", "e2", "e3", "e4"]
    assert all(json.loads(x) for x in part.read_text().splitlines())


def test_lines_written_but_not_indexed_are_indexed_on_open(tmp_path: Path) -> None:
    """Crash after the log write and before the index update: the retry is a duplicate."""
    with EventLog(tmp_path) as log:
        log.append([ev(1)])
    with (tmp_path / "2026-11-23.jsonl").open("ab") as f:
        f.write(serialize(ev(2)) + b"\n")
    with EventLog(tmp_path) as log:
        assert "e2" in log
        r = log.append([ev(2), ev(3)])
        assert r.duplicates == ("e2",) and r.accepted == ("e3",)
    assert sorted(ids_in_files(tmp_path)) == ["e1", "e2", "e3"]


def test_erase_user_rewrites_partitions(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append(
            [
                ev(1, user="alice"),
                ev(2, user="bob"),
                ev(3, user="alice", ts=T0 + timedelta(days=2)),
                ev(4, user="alice2"),
            ]
        )
        assert log.erase_user("alice") == 2
        assert sorted(e.event_id for e in log.iter_events()) == ["e2", "e4"]
        assert "e1" not in log and "e2" in log and log.count() == 2
        assert log.erase_user("nobody") == 0
        log.append([ev(5, user="bob")])
    with EventLog(tmp_path) as log:  # the index agrees with the files after reopening
        assert log.count() == 3
        assert sorted(ids_in_files(tmp_path)) == ["e2", "e4", "e5"]
    assert not list(tmp_path.glob("*.tmp"))


def test_concurrent_appends_from_threads_are_group_committed(tmp_path: Path) -> None:
    results = []
    with EventLog(tmp_path) as log:

        def worker(k: int) -> None:
            for b in range(20):
                # overlapping ids between threads: each id stored once
                batch = [ev(f"{(k % 4)}-{b}-{j}", ts=T0 + timedelta(hours=j)) for j in range(10)]
                results.append(log.append(batch))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert log.count() == 4 * 20 * 10
    accepted = [i for r in results for i in r.accepted]
    assert len(accepted) == len(set(accepted)) == 800
    assert sum(len(r.duplicates) for r in results) == 800
    stored = ids_in_files(tmp_path)
    assert len(stored) == len(set(stored)) == 800


def _run_child(
    root: Path, first: int, n: int, kill_after: int | None, rnd: random.Random
) -> list[int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR)}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(root), str(first), str(n), "40"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT_DIR,
    )
    acked: list[int] = []
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    if kill_after is None:
        acked = [int(x) for x in proc.stdout.read().split()]
        assert proc.wait(timeout=30) == 0
        return acked
    while len(acked) < kill_after:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(int(line))
    # kill at a random moment: right away, or a little later while it keeps appending
    threading.Event().wait(rnd.uniform(0, 0.02))
    os.kill(proc.pid, signal.SIGKILL)
    acked += [int(x) for x in proc.stdout.read().split()]  # acks printed before the kill landed
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return acked


@pytest.mark.timeout(60)
def test_sigkill_never_loses_an_acknowledged_event(tmp_path: Path) -> None:
    rnd = random.Random(1234)
    root = tmp_path / "log"
    acked: set[int] = set()
    next_batch = 0
    for _ in range(5):
        got = _run_child(root, next_batch, 400, rnd.randint(1, 25), rnd)
        acked.update(got)
        # every acknowledged batch is there in full, and nothing is stored twice
        with EventLog(root) as log:
            ids = [e.event_id for e in log.iter_events()]
            assert len(ids) == len(set(ids))
            stored = set(ids)
            missing = [f"b{i}-{j}" for i in acked for j in range(40) if f"b{i}-{j}" not in stored]
            assert not missing, missing[:5]
            assert log.count() == len(stored)
        # the client retries from the first unacknowledged batch (maybe half written)
        next_batch = max(got, default=next_batch - 1) + 1
    final = _run_child(root, next_batch, 3, None, rnd)
    assert len(final) == 3
    ids = ids_in_files(root)
    assert len(ids) == len(set(ids))
    assert {f"b{i}-{j}" for i in acked | set(final) for j in range(40)} <= set(ids)


def test_interrupted_erasure_is_reindexed_on_open(tmp_path: Path) -> None:
    """A day file rewritten (erasure) but the index not yet updated: the index follows the file."""
    with EventLog(tmp_path) as log:
        log.append([ev(1, user="alice"), ev(2, user="bob"), ev(3, user="alice")])
    part = tmp_path / "2026-11-23.jsonl"
    kept = [x for x in part.read_bytes().split(b"\n") if x and b'"alice"' not in x]
    part.write_bytes(b"\n".join(kept) + b"\n")
    with EventLog(tmp_path) as log:
        assert log.count() == 1 and "e1" not in log and "e2" in log
        assert log.append([ev(1, user="carol")]).accepted == ("e1",)


def test_read_table_matches_iter_events(tmp_path: Path) -> None:
    events = [
        Event(
            event_id=f"e{i}",
            user_id=f"u{i % 3}",
            item_id=f"i{i}",
            type="purchase",
            value=9.5 + i,
            timestamp=T0 + timedelta(hours=7 * i, microseconds=123456),
            context={"session_id": f"s{i}", "position": i, "device": "ios"},
        )
        for i in range(10)
    ]
    with EventLog(tmp_path) as log:
        log.append(events)
        from data.event_table import events_to_table

        t = log.read_table()
        assert t.sort_by("event_id").equals(
            events_to_table(list(log.iter_events())).sort_by("event_id")
        )
        assert sorted(t.column("event_id").to_pylist()) == sorted(e.event_id for e in events)
        assert t.column("timestamp").to_pylist()[0].microsecond == 123456


def test_deleted_index_is_rebuilt_from_the_day_files(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append([ev(1), ev(2, ts=T0 + timedelta(days=3))])
    for f in tmp_path.glob("index.sqlite*"):
        f.unlink()
    with EventLog(tmp_path) as log:
        assert log.count() == 2
        assert log.append([ev(1), ev(3)]).accepted == ("e3",)


def test_unusable_folder_is_a_clear_error(tmp_path: Path) -> None:
    from data.errors import EventLogError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EventLogError, match="cannot open the event log"):
        EventLog(blocker / "events")


def test_recent_reads_the_last_events_from_the_end_of_the_newest_days(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from data.eventlog import EventLog, _last_lines
    from data.models import Event

    start = datetime(2026, 11, 1, tzinfo=UTC)
    events = [Event(event_id=f"r{k}", user_id="u", item_id="i", type="view",
                    timestamp=start + timedelta(hours=k)) for k in range(100)]  # five days
    with EventLog(tmp_path / "events", sync=False) as log:
        log.append(events)
        for n in (0, 1, 7, 30, 99, 100, 500):
            assert [e.event_id for e in log.recent(n)] == [e.event_id for e in events][-n or 100 :][
                :n
            ]
        day = log.partitions()[-1]
    lines = day.read_bytes().split(b"\n")[:-1]
    for block in (7, 64, 1 << 20):  # block edges inside lines
        assert _last_lines(day, 3, block=block) == lines[-3:]
    with day.open("ab") as fh:
        fh.write(b'{"event_id": "torn"')  # a torn last line is left out
    assert _last_lines(day, 2) == lines[-2:]
