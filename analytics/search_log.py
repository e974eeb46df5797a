"""The search log: what each search answered (request id, time, user, query, number of
hits, whether it was relaxed, the item ids shown), so reports can find queries without
results and the position of a clicked item. Events echo the request id
(``context.request_id``): that links a search to its clicks and purchases.

SQLite (``state_dir/searches.sqlite``, WAL): a search only appends to a buffer; a thread of
the log writes batches (as ``recsys.experiment_store.SqliteRequestLog`` does), so a request
never waits for the file. Rows older than ``keep_days`` are pruned.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

SHOWN_IDS = 20
"""Item ids kept per search (the first page or two)."""


@dataclass(frozen=True, slots=True)
class LoggedSearch:
    request_id: str
    at: datetime
    user_id: str | None
    query: str
    total: int
    relaxed: bool
    hit_ids: tuple[str, ...]


class SqliteSearchLog:
    def __init__(self, path: Path, *, flush_seconds: float = 1.0, keep_days: int = 90) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS searches (
                request_id TEXT PRIMARY KEY, at TEXT NOT NULL, user_id TEXT, query TEXT NOT NULL,
                total INTEGER NOT NULL, relaxed INTEGER NOT NULL, hit_ids TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS searches_at ON searches (at);
            """
        )
        self._db.commit()
        self._lock = threading.Lock()
        self._buf_lock = threading.Lock()
        self._buf: list[tuple[object, ...]] = []
        self._keep = timedelta(days=keep_days)
        self._flush_seconds = flush_seconds
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="search-log-flush", daemon=True)
        self._thread.start()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SqliteSearchLog:
        return cls(state_dir / "searches.sqlite")

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except sqlite3.Error:
                log.exception("search log: flush to %s failed; will retry", self.path)

    def record(
        self,
        *,
        request_id: str,
        at: datetime,
        user_id: str | None,
        query: str,
        total: int,
        relaxed: bool,
        hit_ids: Sequence[str],
    ) -> None:
        row = (
            request_id,
            at.astimezone(UTC).isoformat(),
            user_id,
            query,
            int(total),
            int(relaxed),
            json.dumps(list(hit_ids[:SHOWN_IDS])),
        )
        with self._buf_lock:
            self._buf.append(row)

    def flush(self) -> None:
        with self._lock:
            with self._buf_lock:
                rows, self._buf = self._buf, []
            if not rows:
                return
            try:
                self._db.executemany("INSERT OR REPLACE INTO searches VALUES (?,?,?,?,?,?,?)", rows)
                cutoff = (datetime.now(UTC) - self._keep).isoformat()
                self._db.execute("DELETE FROM searches WHERE at < ?", (cutoff,))
                self._db.commit()
            except sqlite3.Error:
                with self._buf_lock:
                    self._buf[:0] = rows
                raise

    def between(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[LoggedSearch]:
        """Searches with ``start <= at < end`` (after flushing this process's buffer)."""
        self.flush()
        lo = start.astimezone(UTC).isoformat() if start else ""
        hi = end.astimezone(UTC).isoformat() if end else "9999"
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM searches WHERE at >= ? AND at < ? ORDER BY at", (lo, hi)
            ).fetchall()
        for rid, at, user, query, total, relaxed, ids in rows:
            yield LoggedSearch(
                rid,
                datetime.fromisoformat(at),
                user,
                query,
                int(total),
                bool(relaxed),
                tuple(json.loads(ids)),
            )

    def forget_user(self, user_id: str) -> int:
        """Erasure: the user's searches lose their user id and query text."""
        self.flush()
        with self._lock:
            n = self._db.execute(
                "UPDATE searches SET user_id = NULL, query = '' WHERE user_id = ?", (user_id,)
            ).rowcount
            self._db.commit()
        return n

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        try:
            self.flush()
        finally:
            self._db.close()
