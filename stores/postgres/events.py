"""Shared events in PostgreSQL: one row per event, idempotent on ``event_id``.

A batch is one ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING`` (one round
trip whatever its size); the commit returns once the WAL is flushed (``synchronous_commit``
on, PostgreSQL's default), so an acknowledged event is durable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyarrow as pa

from data.event_table import CONTEXT_FIELDS, EVENT_COLUMNS, EVENT_SCHEMA
from data.eventlog import AppendResult
from data.models import Event
from stores.postgres.db import SLOW_SECONDS, PgDatabase

_TYPES = {"timestamp": "timestamptz", "value": "float8", "position": "int4"}
_DB_COLS = ["ts" if c == "timestamp" else c for c in EVENT_COLUMNS]
_INSERT = (
    f"INSERT INTO events ({', '.join(_DB_COLS)}) SELECT * FROM unnest("
    + ", ".join(f"%s::{_TYPES.get(c, 'text')}[]" for c in EVENT_COLUMNS)
    + ") ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_FETCH = 20_000


def _day_start(v: date | datetime) -> datetime:
    if isinstance(v, datetime):
        v = (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC).date()
    return datetime.combine(v, time(), tzinfo=UTC)


def _where(
    since: date | datetime | None, until: date | datetime | None
) -> tuple[str, list[datetime]]:
    parts, args = [], []
    if since is not None:
        parts.append("ts >= %s")
        args.append(_day_start(since))
    if until is not None:
        parts.append("ts < %s")
        args.append(_day_start(until) + timedelta(days=1))
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


class PgEvents:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def append(self, events: Sequence[Event]) -> AppendResult:
        firsts: dict[str, Event] = {}
        for e in events:
            firsts.setdefault(e.event_id, e)
        if not firsts:
            return AppendResult((), ())
        cols: list[list[Any]] = [[] for _ in EVENT_COLUMNS]
        # rows in id order: two writers inserting overlapping batches lock ids in one order,
        # so they wait for each other instead of deadlocking
        for _, e in sorted(firsts.items()):
            row = (e.event_id, e.user_id, e.item_id, e.type, e.timestamp, e.value,
                   *(getattr(e.context, f) for f in CONTEXT_FIELDS))
            for col, v in zip(cols, row, strict=True):
                col.append(v)
        with self._db.connection() as conn:  # one statement: atomic on its own
            stored = {r[0] for r in conn.execute(_INSERT, cols).fetchall()}
        acc: list[str] = []
        dup: list[str] = []
        for e in events:
            if e.event_id in stored:
                acc.append(e.event_id)
                stored.discard(e.event_id)  # a repeat within the batch is a duplicate
            else:
                dup.append(e.event_id)
        return AppendResult(tuple(acc), tuple(dup))

    def contains(self, event_id: str) -> bool:
        return bool(self._db.execute("SELECT 1 FROM events WHERE event_id = %s", (event_id,)))

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM events")[0][0])

    def _rows(
        self, since: date | datetime | None, until: date | datetime | None
    ) -> Iterator[list[tuple[Any, ...]]]:
        where, args = _where(since, until)
        sql = f"SELECT {', '.join(_DB_COLS)} FROM events{where} ORDER BY ts, event_id"
        # a server-side cursor: training reads millions of rows, a batch at a time
        with self._db.tx(None) as conn, conn.cursor(name="shoprank_events") as cur:
            cur.execute(sql, args)
            while batch := cur.fetchmany(_FETCH):
                yield batch

    def read_table(
        self, *, since: date | datetime | None = None, until: date | datetime | None = None
    ) -> pa.Table:
        cols: list[list[Any]] = [[] for _ in EVENT_COLUMNS]
        for batch in self._rows(since, until):
            for j, col in enumerate(zip(*batch, strict=True)):
                cols[j].extend(col)
        return pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(cols, EVENT_SCHEMA, strict=True)],
            schema=EVENT_SCHEMA,
        )

    def iter_events(
        self, *, since: date | datetime | None = None, until: date | datetime | None = None
    ) -> Iterator[Event]:
        for batch in self._rows(since, until):
            for r in batch:
                yield _event(r)

    def recent(self, limit: int) -> list[Event]:
        """The last ``limit`` events by time (the ``ts`` index: the read does not grow with
        the table), oldest first."""
        if limit <= 0:
            return []
        rows = self._db.execute(
            f"SELECT {', '.join(_DB_COLS)} FROM events ORDER BY ts DESC, event_id DESC "
            "LIMIT %s", (limit,))
        return [_event(r) for r in reversed(rows)]

    def erase_user(self, user_id: str) -> int:
        with self._db.tx(SLOW_SECONDS) as conn:
            return int(conn.execute("DELETE FROM events WHERE user_id = %s", (user_id,)).rowcount)

    def close(self) -> None:
        """The database is closed by its owner."""


def _event(r: Sequence[Any]) -> Event:
    n = len(CONTEXT_FIELDS)
    ctx = {k: v for k, v in zip(CONTEXT_FIELDS, r[-n:], strict=True) if v is not None}
    return Event.model_validate(
        {"event_id": r[0], "user_id": r[1], "item_id": r[2], "type": r[3],
         "timestamp": r[4], "value": r[5], "context": ctx}
    )
