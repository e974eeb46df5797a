"""The served-list log: what each ranked list showed, item by item, for the learned ranker.

The request log (``merch.request_log``) keeps one row per request for
attribution; this log keeps the list itself — each item in the order shown with the score
breakdown the blend gave it (every candidate source's score and blend share) — which is what
``training.ranker_data`` turns into training lists once events tell what followed. One SQLite
file (``state/served.sqlite``, WAL, shared by the workers); rows are written by a thread of
their own in batches, so a request only appends to a buffer; rows older than ``keep_days`` go.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "served.sqlite"


@dataclass(frozen=True, slots=True)
class ServedList:
    request_id: str
    at: datetime
    surface: str
    user_id: str | None
    items: tuple[tuple[str, Mapping[str, float]], ...]
    """(item id, score breakdown) in the order shown."""
    variant: str | None = None
    ranker_version: str | None = None
    """The ranker version that ordered the list (None: the hand blend)."""
    query: str | None = None


def _ts(d: datetime) -> str:
    return d.astimezone(UTC).isoformat(timespec="microseconds")


class ServedLog:
    def __init__(self, path: Path, *, flush_seconds: float = 1.0, batch: int = 200,
                 keep_days: int = 30) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS served (
                request_id TEXT PRIMARY KEY, at TEXT NOT NULL, surface TEXT NOT NULL,
                user_id TEXT, variant TEXT, ranker TEXT, query TEXT, items TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS served_at ON served (at);
            """
        )
        self._db.commit()
        self._lock = threading.Lock()
        self._buf_lock = threading.Lock()
        self._buf: list[tuple[str | None, ...]] = []
        self._batch = batch
        self._flush_seconds = flush_seconds
        self._keep = timedelta(days=keep_days)
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="served-log-flush", daemon=True)
        self._thread.start()

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> ServedLog:
        return cls(state_dir / FILE_NAME)

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
            except sqlite3.Error:
                log.exception("served log: flush to %s failed; will retry", self.path)

    def record(self, served: ServedList) -> None:
        # 7 significant digits: what the float32 features keep, half the bytes of a float64
        items = json.dumps([[i, {k: float(f"{v:.7g}") for k, v in bd.items()}]
                            for i, bd in served.items], separators=(",", ":"))
        row = (served.request_id, _ts(served.at), served.surface, served.user_id,
               served.variant, served.ranker_version, served.query, items)
        with self._buf_lock:
            self._buf.append(row)
            due = len(self._buf) >= self._batch
        if due:
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            with self._buf_lock:
                rows, self._buf = self._buf, []
            if not rows:
                return
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO served VALUES (?,?,?,?,?,?,?,?)", rows)
                self._db.execute("DELETE FROM served WHERE at < ?",
                                 (_ts(datetime.now(UTC) - self._keep),))
                self._db.commit()
            except sqlite3.Error:
                with self._buf_lock:
                    self._buf[:0] = rows
                raise

    def forget_user(self, user_id: str) -> int:
        """An erased user: their lists stay (for the counts), without their id."""
        self.flush()
        with self._lock:
            n = self._db.execute("UPDATE served SET user_id = NULL, query = NULL WHERE user_id = ?",
                                 (user_id,)).rowcount
            self._db.commit()
        return n

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM served").fetchone()[0])

    def lists(self, since: datetime | None = None) -> Iterator[ServedList]:
        """Every logged list served at or after ``since``, oldest first."""
        self.flush()
        with self._lock:
            rows = self._db.execute(
                "SELECT request_id, at, surface, user_id, variant, ranker, query, items "
                "FROM served "
                "WHERE at >= ? ORDER BY at, request_id", (_ts(since) if since else "",)
            ).fetchall()
        for rid, at, surface, user, variant, ranker, query, items in rows:
            yield ServedList(rid, datetime.fromisoformat(at), surface, user,
                             tuple((i, bd) for i, bd in json.loads(items)), variant, ranker, query)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        try:
            self.flush()
        finally:
            self._db.close()


def read_served(path: Path) -> list[ServedList]:
    """Every list of a served log file (empty when there is none)."""
    if not path.exists():
        return []
    sl = ServedLog(path)
    try:
        return list(sl.lists())
    finally:
        sl.close()

