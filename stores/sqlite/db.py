"""One SQLite database file: a connection in WAL mode, transactions, versioned migrations.

Every embedded store owns one :class:`SqliteDb`. The connection is in autocommit mode and a
write is one ``BEGIN IMMEDIATE … COMMIT`` (taking the file's write lock at the start, so two
processes never deadlock upgrading a read lock). A lock held by another process longer than
the store's budget (``busy_timeout``) is a :class:`StoreUnavailableError`.

Migrations are ``(version, name, script)``; :meth:`SqliteDb.migrate` applies the missing ones
in order, each in one transaction with its row in ``schema_version``. Scripts use ``IF NOT
EXISTS`` so two processes opening a fresh file at once both succeed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from core.memory import small_page_cache
from stores.errors import StoreConfigError, StoreUnavailableError

log = logging.getLogger(__name__)

Migration = tuple[int, str, str]
"""(version, name, SQL script)."""

SETTING = "SHOPRANK_DATABASE_URL"


class SqliteDb:
    """A thread-safe connection to one SQLite file (one lock: SQLite serializes anyway)."""

    def __init__(
        self,
        path: Path,
        migrations: Sequence[Migration],
        *,
        timeout: float,
        synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL",
    ) -> None:
        self.path = path
        self.lock = threading.RLock()
        conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            _enter_wal(conn, timeout)
            conn.execute(f"PRAGMA synchronous={synchronous}")
            small_page_cache(conn)
            st = path.stat()
            self._identity = (st.st_dev, st.st_ino)
            self.conn = conn
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            raise StoreConfigError(
                SETTING, f"cannot open {path}: {exc}; check the folder and its permissions"
            ) from exc
        self.migrate(migrations)

    def migrate(self, migrations: Sequence[Migration]) -> list[int]:
        """Apply the migrations not recorded in ``schema_version``; returns their versions."""
        applied: list[int] = []
        with self.lock:
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
            )
            done = {r[0] for r in self.conn.execute("SELECT version FROM schema_version")}
            for version, name, script in sorted(migrations):
                if version in done:
                    continue
                with self.tx() as db:
                    if db.execute(
                        "SELECT 1 FROM schema_version WHERE version = ?", (version,)
                    ).fetchone():
                        continue  # another process applied it meanwhile
                    for stmt in _statements(script):
                        db.execute(stmt)
                    db.execute(
                        "INSERT INTO schema_version (version, name) VALUES (?, ?)", (version, name)
                    )
                applied.append(version)
                log.info("%s: applied migration %d (%s)", self.path.name, version, name)
        return applied

    def versions(self) -> list[int]:
        with self.read() as db:
            return [r[0] for r in db.execute("SELECT version FROM schema_version ORDER BY 1")]

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed when the block ends."""
        with self.lock:
            self._check_file()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._unavailable(exc) from exc
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    raise self._unavailable(exc) from exc
                raise

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads (autocommit: each statement sees the latest commit)."""
        with self.lock:
            try:
                yield self.conn
            except sqlite3.OperationalError as exc:
                raise self._unavailable(exc) from exc

    def _check_file(self) -> None:
        """A write to a file deleted or replaced under the open connection would succeed into
        an orphaned inode and be gone at the next start: refuse it (one ``stat``, ≈ 2 µs)."""
        try:
            st = self.path.stat()
            same = (st.st_dev, st.st_ino) == self._identity
        except OSError:
            same = False
        if not same:
            raise StoreUnavailableError(
                f"{self.path} was deleted or replaced while open; restart the service to "
                "recreate it (nothing was written)"
            )

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailableError:
        return StoreUnavailableError(f"{self.path}: {exc} (another process holds it too long?)")

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _enter_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch a connection to WAL mode. On a fresh file another process may be switching it
    at the same moment; SQLite then answers "database is locked" at once, without waiting
    on ``busy_timeout``, so this retries until the store's budget is spent."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _statements(script: str) -> list[str]:
    """The statements of a migration script (no semicolons inside our statements)."""
    return [s.strip() for s in script.split(";") if s.strip()]
