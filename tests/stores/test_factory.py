"""open_stores: URLs, start-up errors naming the setting, migrations, time budgets."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from data.models import User
from serving.errors import _status_for  # the one error → HTTP mapping
from stores import (
    ConflictError,
    NotFoundError,
    StoreConfigError,
    StoreOptions,
    StoreUnavailableError,
    open_stores,
)
from stores.postgres.db import PgDatabase
from stores.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from stores.sqlite.state import MIGRATIONS as SQLITE_MIGRATIONS
from tests.stores.conftest import event


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_embedded_by_default_and_by_sqlite_url(tmp_path: Path) -> None:
    with open_stores(None, "", tmp_path) as s:
        assert (s.durable, s.hot) == ("embedded", "embedded")
        s.events.append([event(1)])
    assert (tmp_path / "events").is_dir() and (tmp_path / "state" / "stores.sqlite").exists()
    other = tmp_path / "elsewhere"
    with open_stores(f"sqlite:///{other}", None, tmp_path) as s:
        assert s.events.count() == 0
    assert (other / "state" / "stores.sqlite").exists()


@pytest.mark.parametrize(
    ("database_url", "redis_url", "setting", "words"),
    [
        ("mysql://x@y/z", None, "SHOPRANK_DATABASE_URL", "unknown scheme"),
        ("sqlite://", None, "SHOPRANK_DATABASE_URL", "names no folder"),
        (None, "http://localhost:6379", "SHOPRANK_REDIS_URL", "unknown scheme"),
    ],
)
def test_bad_urls_name_the_setting(
    tmp_path: Path, database_url: str | None, redis_url: str | None, setting: str, words: str
) -> None:
    with pytest.raises(StoreConfigError, match=words) as err:
        open_stores(database_url, redis_url, tmp_path)
    assert err.value.setting == setting
    assert str(err.value).startswith(setting + ": ")
    assert "\n" not in str(err.value)


def test_unreachable_servers_at_start_up_name_the_setting(tmp_path: Path, silent_port: int) -> None:
    cases = [
        (f"postgresql://x@127.0.0.1:{closed_port()}/db", None, "SHOPRANK_DATABASE_URL"),
        (f"postgresql://x@127.0.0.1:{silent_port}/db", None, "SHOPRANK_DATABASE_URL"),
        (None, f"redis://127.0.0.1:{closed_port()}/0", "SHOPRANK_REDIS_URL"),
        (None, f"redis://127.0.0.1:{silent_port}/0", "SHOPRANK_REDIS_URL"),
    ]
    for database_url, redis_url, setting in cases:
        t0 = time.monotonic()
        with pytest.raises(StoreConfigError) as err:
            open_stores(database_url, redis_url, tmp_path,
                        options=StoreOptions(timeout_seconds=0.5))
        elapsed = time.monotonic() - t0
        assert err.value.setting == setting, (database_url, redis_url)
        assert "cannot reach" in str(err.value) and "\n" not in str(err.value)
        assert elapsed < 1.5, (database_url, redis_url, elapsed)


@pytest.mark.servers
def test_migrations_are_recorded_and_idempotent(pg_url: str, tmp_path: Path) -> None:
    db = PgDatabase(pg_url, timeout=1.0)
    assert db.migrate(PG_MIGRATIONS) == [v for v, _, _ in PG_MIGRATIONS]
    assert db.migrate(PG_MIGRATIONS) == []
    assert db.versions() == [v for v, _, _ in PG_MIGRATIONS]
    db.close()
    with open_stores(pg_url, None, tmp_path) as s:  # start-up applies nothing more
        assert s.catalog.cursor() == 0
    with open_stores(None, None, tmp_path) as s:
        pass
    from stores.sqlite.db import SqliteDb

    lite = SqliteDb(tmp_path / "state" / "stores.sqlite", SQLITE_MIGRATIONS, timeout=1.0)
    assert lite.versions() == [v for v, _, _ in SQLITE_MIGRATIONS]
    assert lite.migrate(SQLITE_MIGRATIONS) == []
    lite.close()


@pytest.mark.servers
def test_a_hung_postgres_backend_is_a_store_error_within_the_budget(
    pg_url: str, postgres_server: str, tmp_path: Path
) -> None:
    with open_stores(pg_url, None, tmp_path, options=StoreOptions(timeout_seconds=0.5)) as s:
        db: PgDatabase = s.users._db  # type: ignore[attr-defined]
        # the pool hands back its most recent connection: find the backend serving it
        pid = int(db.execute("SELECT pg_backend_pid()")[0][0])
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="did not answer within 0.5 s"):
                s.users.get("u1")
            assert time.monotonic() - t0 < 1.0
        finally:
            os.kill(pid, signal.SIGCONT)
            with psycopg.connect(postgres_server, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert s.users.get("u1") is None  # a fresh connection answers again


@pytest.mark.servers
def test_killed_connections_are_replaced(pg_url: str, postgres_server: str, tmp_path: Path) -> None:
    with open_stores(pg_url, None, tmp_path) as s:
        db: PgDatabase = s.events._db  # type: ignore[attr-defined]

        def kill_pooled() -> None:
            pid = int(db.execute("SELECT pg_backend_pid()")[0][0])
            with psycopg.connect(postgres_server, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        kill_pooled()
        assert s.events.count() == 0  # a read retries once on a fresh connection
        kill_pooled()
        with pytest.raises(StoreUnavailableError, match="PostgreSQL"):
            s.events.append([event(1)])  # a write fails (the client retries: it is idempotent)
        assert s.events.append([event(1)]).accepted == ("e1",)


@pytest.mark.servers
def test_a_prepared_read_survives_its_connection(
    pg_url: str, postgres_server: str, tmp_path: Path
) -> None:
    # the user read is prepared once per connection (PgDatabase.read_prepared): a connection
    # that died is replaced, and the statement prepared again on the new one
    with open_stores(pg_url, None, tmp_path) as s:
        s.users.upsert([User(user_id="u1", attributes={"region": "台北市"}, consent=False)])
        db: PgDatabase = s.users._db  # type: ignore[attr-defined]
        first = s.users.get("u1")
        assert first == User(user_id="u1", attributes={"region": "台北市"}, consent=False)
        for _ in range(2):
            pid = int(db.execute("SELECT pg_backend_pid()")[0][0])
            with psycopg.connect(postgres_server, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert s.users.get("u1") == first
            assert s.users.get("nobody") is None
        with pytest.raises(psycopg.DataError):  # as psycopg refuses it: no NUL in text
            s.users.get("u1\x00")


@pytest.mark.servers
def test_a_paused_redis_is_a_store_error_within_the_budget(
    redis_server: str, redis_prefix: str, tmp_path: Path
) -> None:
    admin = redis.Redis.from_url(redis_server)
    with open_stores(None, redis_server, tmp_path, redis_prefix=redis_prefix,
                     options=StoreOptions(timeout_seconds=0.3)) as s:
        s.feed_pages.put("k", b"v")
        admin.execute_command("CLIENT", "PAUSE", "1200", "ALL")
        try:
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="Redis"):
                s.feed_pages.get("k")
            assert time.monotonic() - t0 < 0.8
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        assert s.feed_pages.get("k") == b"v"
    admin.close()


@pytest.mark.servers
def test_live_counts_survive_a_script_flush(
    redis_server: str, redis_prefix: str, tmp_path: Path
) -> None:
    with open_stores(None, redis_server, tmp_path, redis_prefix=redis_prefix) as s:
        s.shopper.record([event(1, item="a", type="purchase")])
        redis.Redis.from_url(redis_server).script_flush()
        s.shopper.record([event(2, item="b", type="view"), event(3, item="b", type="view")])
        assert [i for i, _ in s.shopper.live_top(5)] == ["a", "b"]
        assert s.shopper.recent("u1")[0] == ("b", "view")


def test_serving_answers_store_errors_with_503_404_409() -> None:
    assert _status_for(StoreUnavailableError("down")) == (503, "storage_unavailable")
    assert _status_for(NotFoundError("rule", "r1"))[0] == 404
    assert _status_for(ConflictError("rule", "r1"))[0] == 409


@pytest.mark.servers
def test_postgres_log_bodies_are_compressed_with_lz4(pg_url: str, tmp_path: Path) -> None:
    with open_stores(pg_url, None, tmp_path):
        pass
    db = PgDatabase(pg_url, timeout=5.0)
    got = dict(db.execute(
        "SELECT attrelid::regclass::text, attcompression FROM pg_attribute "
        "WHERE attname = 'body' AND attrelid IN ('log_served'::regclass, "
        "'log_searches'::regclass)"))
    db.close()
    assert got == {"log_served": "l", "log_searches": "l"}  # Debian's PostgreSQL has lz4
