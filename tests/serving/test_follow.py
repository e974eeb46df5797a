"""What another process wrote reaches a worker: :class:`EventFollower` reads what was appended
to the event log since its last call, once, in order, across day files and erasures;
:class:`JournalTail` hands over complete new journal lines. Over HTTP, with two workers, a
view, a consent withdrawal, an erasure and an item deletion sent to one worker hold on the
next calls whichever worker answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from data.eventlog import EventLog
from data.models import Event
from serving import follow
from serving.follow import EventFollower, JournalTail
from tests.serving.conftest import ADMIN_KEY, two_worker_server

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def ev(i: int, user: str = "u1", day: int = 0) -> Event:
    return Event(event_id=f"e{i}", user_id=user, item_id=f"i{i}", type="view",
                 timestamp=T0 + timedelta(days=day, seconds=i))


def test_follower_reads_other_writers_appends_once_and_in_order(tmp_path: Path) -> None:
    writer = EventLog(tmp_path)  # another process's log: its own file lock and handles
    writer.append([ev(0)])
    reader = EventLog(tmp_path)
    got: list[str] = []
    follower = EventFollower(reader, lambda evs: got.extend(e.event_id for e in evs))
    assert follower.sync() == 0 and got == []  # starts at the end of the log
    writer.append([ev(1), ev(2, day=1)])
    writer.append([ev(3), ev(1)])  # e1 again: a duplicate, not written twice
    assert follower.sync() == 3
    assert sorted(got) == ["e1", "e2", "e3"] and got.index("e1") < got.index("e3")
    assert follower.sync() == 0 and len(got) == 3
    writer.erase_user("u2")  # nothing of u2: no rewrite
    writer.append([ev(4, user="u2"), ev(5)])
    writer.erase_user("u2")  # rewrites the day file, shorter
    assert follower.sync() == 1 and got[-1] == "e5"  # e4 (u2) was erased before this read
    writer.append([ev(6)])
    assert follower.sync() == 1 and got[-1] == "e6"
    writer.close()
    reader.close()


def test_follower_skips_a_bulk_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer, reader = EventLog(tmp_path), EventLog(tmp_path)
    got: list[str] = []
    follower = EventFollower(reader, lambda evs: got.extend(e.event_id for e in evs))
    monkeypatch.setattr(follow, "MAX_FOLLOW_BYTES", 500)
    writer.append([ev(i) for i in range(20)])  # ≈ 3 kB at once
    assert follower.sync() == 0 and got == []
    writer.append([ev(99)])  # later small writes are followed again
    assert follower.sync() == 1 and got == ["e99"]
    writer.close()
    reader.close()


def test_a_view_reaches_every_worker(restart_home: Path) -> None:
    items = [json.loads(line)["item_id"] for line in
             (restart_home / "data" / "items.jsonl").read_text().splitlines()[:3]]
    with two_worker_server(restart_home) as (base, _, _):
        user = "follow-test-shopper"
        before = httpx.get(f"{base}/v1/recommendations", params={"user_id": user, "n": 5}).json()
        assert before["strategy"] == "trending"  # nothing known about them yet
        events = [{"event_id": f"follow-{k}", "user_id": user, "type": "view", "item_id": item,
                   "timestamp": datetime.now(UTC).isoformat()} for k, item in enumerate(items)]
        r = httpx.post(f"{base}/v1/events", json={"events": events})
        assert r.status_code == 200 and r.json()["accepted"] == 3
        for _ in range(20):  # a new connection each: the kernel spreads them over both workers
            body = httpx.get(f"{base}/v1/recommendations", params={"user_id": user, "n": 5}).json()
            assert body["strategy"] == "history", body["strategy"]
            anchors = {r.get("related_item_id") for it in body["items"] for r in it["reasons"]}
            assert anchors & set(items)


def test_journal_tail_hands_over_complete_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"a": 0}\n')
    got: list[list[bytes]] = []
    tail = JournalTail(path, got.append)
    assert tail.sync() == 0 and got == []  # starts at the end
    with path.open("ab") as fh:
        fh.write(b'{"a": 1}\n{"a": 2')  # the second line is not complete yet
    assert tail.sync() == 1 and got == [[b'{"a": 1}']]
    with path.open("ab") as fh:
        fh.write(b'}\n')
    assert tail.sync() == 1 and got[-1] == [b'{"a": 2}'] and tail.sync() == 0
    path.write_bytes(b'{"b": 1}\n')  # replaced by a shorter file: read again from its start
    assert tail.sync() == 1 and got[-1] == [b'{"b": 1}']


def test_user_and_catalog_changes_reach_every_worker(restart_home: Path) -> None:
    admin = {"X-API-Key": ADMIN_KEY}
    lines = (restart_home / "data" / "items.jsonl").read_text().splitlines()
    items = [json.loads(line)["item_id"] for line in lines[:3]]
    with two_worker_server(restart_home, SHOPRANK_ADMIN_API_KEY=ADMIN_KEY) as (base, _, _):
        user = "follow-consent-shopper"
        events = [{"event_id": f"fc-{k}", "user_id": user, "type": "view", "item_id": item,
                   "timestamp": datetime.now(UTC).isoformat()} for k, item in enumerate(items)]
        assert httpx.post(f"{base}/v1/events", json={"events": events}).status_code == 200
        r = httpx.put(f"{base}/v1/users/{user}", json={"consent": False}, headers=admin)
        assert r.status_code == 200 and r.json()["consent"] is False
        for _ in range(12):  # new connections: both workers answer
            body = httpx.get(f"{base}/v1/recommendations", params={"user_id": user, "n": 5}).json()
            assert body["strategy"] == "non_personalized"
        assert httpx.delete(f"{base}/v1/users/{user}", headers=admin).status_code == 200
        for _ in range(12):
            assert httpx.get(f"{base}/v1/users/{user}", headers=admin).status_code == 404
        top = httpx.get(f"{base}/v1/trending", params={"n": 5}).json()["items"][0]["item_id"]
        assert httpx.delete(f"{base}/v1/catalog/items/{top}", headers=admin).status_code == 200
        for _ in range(12):
            assert httpx.get(f"{base}/v1/catalog/items/{top}", headers=admin).status_code == 404
            shown = httpx.get(f"{base}/v1/trending", params={"n": 20}).json()["items"]
            assert top not in {it["item_id"] for it in shown}


def test_an_erasure_drops_the_users_records_from_the_journal(tmp_path: Path) -> None:
    from data.journals import UserJournal, erased_user_ids, excluded_by_journal
    from data.models import User

    path = tmp_path / "state" / "users.jsonl"
    journal = UserJournal(path)
    journal.upsert([User(user_id="u1", attributes={"city": "台北"}, consent=True)])
    journal.upsert([User(user_id="u2", attributes={"city": "Lyon"}, consent=True)])
    seen: list[bytes] = []
    tail = JournalTail(path, seen.extend)  # a worker that has read everything so far
    journal.upsert([User(user_id="u1", attributes={"city": "高雄"}, consent=True)])
    journal.erase("u1")
    text = path.read_text(encoding="utf-8")
    assert "台北" not in text and "高雄" not in text and "Lyon" in text  # u1's attributes are gone
    assert [(op, getattr(rec, "user_id", rec)) for op, rec in journal.replay()] == [
        ("upsert", "u2"), ("erase", "u1")]
    assert erased_user_ids(tmp_path / "state") == {"u1"}
    assert "u1" in excluded_by_journal(tmp_path / "state")[0]
    # the file was replaced: the worker reads it again from its start (the same end state)
    assert tail.sync() == 2 and [json.loads(line)["op"] for line in seen] == ["upsert", "erase"]
    journal.erase("nobody")  # no record of them: just appended
    assert tail.sync() == 1
    last = json.loads(seen[-1])
    assert (last["op"], last["user_id"]) == ("erase", "nobody")
    assert abs(datetime.fromisoformat(last["at"]) - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_log_names_the_days_it_changed(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    c0 = log.changes()
    log.append([ev(1), ev(2, day=3)])
    c1 = log.changes()
    assert c1 - c0 == 2 and log.changed_days(c0, c1) == {"2026-11-20", "2026-11-23"}
    log.append([ev(3, user="u9", day=3)])
    log.erase_user("u9")  # rewrites 2026-11-23 only
    c2 = log.changes()
    assert log.changed_days(c1, c2) == {"2026-11-23"}
    for i in range(70):  # more changes than remembered: unknown, so readers look at every file
        log.append([ev(100 + i, day=i % 5)])
    assert log.changed_days(c2, log.changes()) is None
    log.close()
