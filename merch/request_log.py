"""The log of served requests: one row per served list (request id, time, surface, user,
experiment, variant, query, anchor item) in ``requests.sqlite`` under ``settings.state_dir``.

The ranking pipeline writes to it (``ranking.hooks.RequestLogHook``); reports use it to
attribute events that only echo the ``request_id``; rule previews sample recent traffic from
it. Rows are buffered and written in batches by a :class:`data.buffered_table.BufferedTable`
(at most ``flush_seconds`` late); rows older than ``keep_days`` are pruned. A shared store for
several API hosts implements :class:`RequestLog` on a shared database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from data.buffered_table import BufferedTable
from ranking.hooks import RequestLogHook


def _ts(d: datetime | None) -> str | None:
    return d.astimezone(UTC).isoformat() if d is not None else None


def _dt(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None



@dataclass(frozen=True, slots=True)
class ServedRequest:
    request_id: str
    at: datetime
    surface: str
    user_id: str | None = None
    experiment: str | None = None
    variant: str | None = None
    query: str | None = None
    item_id: str | None = None


SERVED_COLUMNS: tuple[str, ...] = ("request_id", "surface", "user_id", "experiment", "variant")
"""What reports read of a served request."""


@runtime_checkable
class RequestLog(RequestLogHook, Protocol):
    """The pipeline's request log (``record``) and what reports and previews read back."""

    def lookup(self, request_ids: Iterable[str]) -> dict[str, ServedRequest]: ...

    def lookup_columns(
        self,
        request_ids: Sequence[str],
        *,
        experiment: str | None = None,
        columns: Sequence[str] = SERVED_COLUMNS,
    ) -> dict[str, list[str | None]]:
        """The rows :meth:`lookup` finds, column-wise (some of ``SERVED_COLUMNS``), only those
        of ``experiment`` when given — what reports read."""
        ...

    def recent(self, surface: str | None = None, limit: int = 1000) -> list[ServedRequest]: ...

    def flush(self) -> None: ...


class SqliteRequestLog:
    def __init__(
        self, path: Path, *, flush_seconds: float = 1.0, batch: int = 500, keep_days: int = 90
    ) -> None:
        self.path = path
        self._table = BufferedTable(
            path, table="requests", columns=8, flush_seconds=flush_seconds, batch=batch,
            keep_days=keep_days,
            schema="""
            CREATE TABLE IF NOT EXISTS requests (
                request_id TEXT PRIMARY KEY, at TEXT NOT NULL, surface TEXT NOT NULL,
                user_id TEXT, experiment TEXT, variant TEXT, query TEXT, item_id TEXT);
            CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
            """,
        )
        self._lock, self._db = self._table.lock, self._table.db

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SqliteRequestLog:
        return cls(state_dir / "requests.sqlite")

    def record(
        self,
        *,
        request_id: str,
        at: datetime,
        surface: str,
        user_id: str | None = None,
        experiment: str | None = None,
        variant: str | None = None,
        query: str | None = None,
        item_id: str | None = None,
    ) -> None:
        self._table.append(
            (request_id, _ts(at), surface, user_id, experiment, variant, query, item_id)
        )

    def flush(self) -> None:
        """Write what is buffered (readers call it first; a thread calls it every
        ``flush_seconds`` or when ``batch`` rows wait)."""
        self._table.flush()

    def prune(self, now: datetime | None = None) -> int:
        """Drop rows served more than ``keep_days`` before ``now``; returns how many."""
        return self._table.prune(now)

    def forget_user(
        self, user_id: str, *, served_between: tuple[datetime, datetime] | None = None
    ) -> int:
        """An erased user: their served requests stay (a variant's impressions still count)
        with no user id and no query; returns how many rows had it. Without
        ``served_between`` the whole table is scanned (there is no index by user: erasures are
        rare, requests are not); with it, only the requests served then (by the index on time)."""
        sql = "UPDATE requests SET user_id = NULL, query = NULL WHERE user_id = ?"
        args: tuple[str, ...] = (user_id,)
        if served_between is not None:
            sql += " AND at >= ? AND at <= ?"
            args = (user_id, _ts(served_between[0]) or "", _ts(served_between[1]) or "")
        return self._table.write(sql, args)

    @staticmethod
    def _served(r: tuple[str | None, ...]) -> ServedRequest:
        return ServedRequest(
            request_id=r[0] or "",
            at=datetime.fromisoformat(r[1] or ""),
            surface=r[2] or "",
            user_id=r[3],
            experiment=r[4],
            variant=r[5],
            query=r[6],
            item_id=r[7],
        )

    def lookup(self, request_ids: Iterable[str]) -> dict[str, ServedRequest]:
        self.flush()
        ids = list(dict.fromkeys(request_ids))
        out: dict[str, ServedRequest] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for r in self._db.execute(
                    f"SELECT * FROM requests WHERE request_id IN ({marks})", chunk
                ):
                    out[r[0]] = self._served(r)
        return out

    def lookup_columns(
        self,
        request_ids: Sequence[str],
        *,
        experiment: str | None = None,
        columns: Sequence[str] = SERVED_COLUMNS,
    ) -> dict[str, list[str | None]]:
        """Logged rows of ``request_ids`` as columns (unknown ids absent), only those of
        ``experiment`` when given; ``columns`` from ``SERVED_COLUMNS``.

        For many ids at once (a report over millions of events): when they are a large share
        of the log, one scan of the table filtered in Python beats index look-ups; otherwise
        the ids go to a temporary table joined with the log.
        """
        unknown = [c for c in columns if c not in SERVED_COLUMNS]
        if unknown:
            raise ValueError(f"columns: unknown {unknown}; choose from {SERVED_COLUMNS}")
        self.flush()
        names = ["request_id", *(c for c in columns if c != "request_id")]
        cols = ", ".join(f"r.{c}" for c in names)
        where, params = ("WHERE r.experiment = ?", (experiment,)) if experiment else ("", ())
        out: dict[str, list[str | None]] = {c: [] for c in columns}
        if not request_ids:
            return out
        with self._lock:
            total = self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
            if len(request_ids) * 4 >= total:
                wanted = set(request_ids)
                sql = f"SELECT {cols} FROM requests r {where}"
                rows = [r for r in self._db.execute(sql, params) if r[0] in wanted]
            else:
                self._db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (request_id TEXT)")
                self._db.execute("DELETE FROM wanted")
                self._db.executemany(
                    "INSERT INTO wanted VALUES (?)", ((i,) for i in dict.fromkeys(request_ids))
                )
                rows = self._db.execute(
                    f"SELECT {cols} FROM wanted w JOIN requests r "
                    f"ON r.request_id = w.request_id {where}",
                    params,
                ).fetchall()
                self._db.execute("DELETE FROM wanted")
                self._db.commit()
        for name in columns:
            j = names.index(name)
            out[name] = [r[j] for r in rows]
        return out

    def recent(self, surface: str | None = None, limit: int = 1000) -> list[ServedRequest]:
        self.flush()
        with self._lock:
            if surface is None:
                rows = self._db.execute("SELECT * FROM requests ORDER BY at DESC LIMIT ?", (limit,))
            else:
                rows = self._db.execute(
                    "SELECT * FROM requests WHERE surface = ? ORDER BY at DESC LIMIT ?",
                    (surface, limit),
                )
            return [self._served(r) for r in rows.fetchall()]

    def __iter__(self) -> Iterator[ServedRequest]:
        self.flush()
        with self._lock:
            rows = self._db.execute("SELECT * FROM requests ORDER BY at").fetchall()
        return iter([self._served(r) for r in rows])

    def close(self) -> None:
        self._table.close()
