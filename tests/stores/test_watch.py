"""ChangeWatcher: changes committed elsewhere reach a callback; a lost feed says "reload all"."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg

from data.models import User
from stores.records import Change
from stores.watch import ChangeWatcher
from tests.stores.conftest import Backend


class Seen:
    def __init__(self) -> None:
        self.changes: list[Change] = []
        self.cv = threading.Condition()

    def __call__(self, changes: list[Change]) -> None:
        with self.cv:
            self.changes += changes
            self.cv.notify_all()

    def wait_for(self, pred: object, seconds: float = 10.0) -> bool:
        with self.cv:
            return self.cv.wait_for(lambda: pred(self.changes), timeout=seconds)  # type: ignore[operator]


def test_changes_reach_the_callback(backend: Backend) -> None:
    writer, reader = backend.open(), backend.open()
    seen = Seen()
    watcher = ChangeWatcher(reader.changes, ["users"], seen, wait_seconds=0.2)
    try:
        writer.users.upsert([User(user_id="w1")])
        writer.catalog.upsert([])  # not a watched topic, and no change at all
        assert seen.wait_for(lambda cs: any(c.keys == ("w1",) for c in cs))
        assert {c.topic for c in seen.changes} == {"users"}
    finally:
        watcher.close()


def test_a_lost_feed_reconnects_and_says_reload_everything(
    pg_url: str, postgres_server: str, redis_server: str, redis_prefix: str, tmp_path: Path
) -> None:
    # only a server connection can be lost: the embedded feed reads a local file
    backend = Backend("shared", pg_url, redis_server, tmp_path, redis_prefix)
    writer, reader = backend.open(), backend.open()
    seen = Seen()
    watcher = ChangeWatcher(reader.changes, ["users"], seen, wait_seconds=0.2, retry_seconds=0.1)
    try:
        channel = reader.users._db.channel  # type: ignore[attr-defined]
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            deadline = time.monotonic() + 10
            killed = 0
            while not killed and time.monotonic() < deadline:
                killed = len(admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query = %s", (f"LISTEN {channel}",)).fetchall())
        assert killed == 1
        assert seen.wait_for(lambda cs: any(c.topic == "*" for c in cs))
        writer.users.upsert([User(user_id="after")])
        assert seen.wait_for(lambda cs: any(c.keys == ("after",) for c in cs))
    finally:
        watcher.close()
        backend.close_all()
