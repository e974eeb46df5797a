"""The search log: what each search answered (request id, time, user, query, number of
hits, whether it was relaxed, the item ids shown), so reports can find queries without
results and the position of a clicked item. Events echo the request id
(``context.request_id``): that links a search to its clicks and purchases.

SQLite (``state_dir/searches.sqlite``) behind a :class:`data.buffered_table.BufferedTable`:
a search only appends to a buffer, never waits for the file; rows older than ``keep_days``
are pruned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from data.buffered_table import BufferedTable, iso

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
        self._table = BufferedTable(
            path, table="searches", columns=7, flush_seconds=flush_seconds, keep_days=keep_days,
            schema="""
            CREATE TABLE IF NOT EXISTS searches (
                request_id TEXT PRIMARY KEY, at TEXT NOT NULL, user_id TEXT, query TEXT NOT NULL,
                total INTEGER NOT NULL, relaxed INTEGER NOT NULL, hit_ids TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS searches_at ON searches (at);
            """,
        )

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SqliteSearchLog:
        return cls(state_dir / "searches.sqlite")

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
        self._table.append((
            request_id, iso(at), user_id, query, int(total), int(relaxed),
            json.dumps(list(hit_ids[:SHOWN_IDS])),
        ))

    def flush(self) -> None:
        self._table.flush()

    def between(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[LoggedSearch]:
        """Searches with ``start <= at < end`` (after flushing this process's buffer)."""
        lo = iso(start) if start else ""
        hi = iso(end) if end else "9999"
        rows = self._table.read(
            "SELECT * FROM searches WHERE at >= ? AND at < ? ORDER BY at", (lo, hi)
        )
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
        return self._table.write(
            "UPDATE searches SET user_id = NULL, query = '' WHERE user_id = ?", (user_id,)
        )

    def close(self) -> None:
        self._table.close()
