"""The search log: what each search answered (request id, time, user, query, number of
hits, whether it was relaxed, the item ids shown), so reports can find queries without
results and the position of a clicked item. Events echo the request id
(``context.request_id``): that links a search to its clicks and purchases.

Kept in the search log store (``stores.searches``: SQLite under ``SHOPRANK_HOME`` or
PostgreSQL, so every replica's searches are in one place); a search only appends to a
buffer, never waits for the store; rows older than the store's ``keep_days`` are pruned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from stores.log_writer import BufferedLog
from stores.protocols import LogStore
from stores.records import LogRow

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


class SearchLog:
    """The search log over a ``LogStore`` (``stores.searches``): a search only appends to a
    buffer (``stores.log_writer.BufferedLog``); reports read every process's searches."""

    def __init__(self, store: LogStore, *, flush_seconds: float = 1.0) -> None:
        self._log = BufferedLog(store, name="search log", flush_seconds=flush_seconds)

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
        self._log.append(LogRow(request_id, at, user_id, {
            "query": query, "total": int(total), "relaxed": bool(relaxed),
            "hit_ids": list(hit_ids[:SHOWN_IDS]),
        }))

    def flush(self) -> None:
        self._log.flush()

    def between(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[LoggedSearch]:
        """Searches with ``start <= at < end`` (after flushing this process's buffer)."""
        for r in self._log.read(start, end):
            b = r.body
            yield LoggedSearch(r.request_id, r.at, r.user_id, str(b.get("query", "")),
                               int(b.get("total", 0)), bool(b.get("relaxed", False)),
                               tuple(b.get("hit_ids", ())))

    def forget_user(self, user_id: str) -> int:
        """Erasure: the user's searches lose their user id and query text."""
        return self._log.forget_user(user_id)

    def close(self) -> None:
        self._log.close()
