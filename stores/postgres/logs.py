"""Shared telemetry logs in PostgreSQL: ``log_searches`` and ``log_served`` (request id
primary key, ``at``, ``user_id``, a jsonb body), written in batches by every replica, one
statement per batch. Bodies past PostgreSQL's 2 kB TOAST threshold (a feed's served
list, about 4 kB) are compressed with lz4 where the server has it (migration 3)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from stores.postgres.db import PgDatabase
from stores.records import LogRow, json_text, log_cutoff, log_table

# each column an array parameter (PgDatabase.insert_columns): a multi-row VALUES list was a
# new statement on every batch, parsed by psycopg in Python and planned by the server each time
_INSERT = (
    "INSERT INTO {t} (request_id, at, user_id, body) SELECT r, a, u, b::jsonb "
    "FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::text[]) AS x(r, a, u, b) "
    "ON CONFLICT (request_id) DO UPDATE SET at = excluded.at, user_id = excluded.user_id, "
    "body = excluded.body"
)


class PgLog:
    def __init__(self, db: PgDatabase, name: str, *, keep_days: int) -> None:
        self._db = db
        self._t = log_table(name)
        self._insert = _INSERT.format(t=self._t).encode()
        self.keep_days = keep_days

    def record(self, rows: Sequence[LogRow]) -> None:
        self.record_encoded([self.encode(r) for r in rows])

    def encode(self, row: LogRow) -> tuple[str, datetime, str | None, str]:
        """The row's columns, the body as JSON text."""
        return row.request_id, row.at, row.user_id, json_text(dict(row.body))

    def record_encoded(self, rows: Sequence[object]) -> None:
        if not rows:
            return
        # one statement may not touch a key twice: the last row of a request id wins; the
        # bodies as JSON text, made jsonb by the server
        values = list({r[0]: r for r in rows}.values())  # type: ignore[index]
        self._db.insert_columns(self._insert, values)

    def read(self, since: datetime | None = None,
             until: datetime | None = None) -> Iterator[LogRow]:
        lo = since or datetime(1970, 1, 1, tzinfo=UTC)
        hi = until or datetime(9999, 1, 1, tzinfo=UTC)
        rows = self._db.execute(
            f"SELECT request_id, at, user_id, body FROM {self._t} "
            "WHERE at >= %s AND at < %s ORDER BY at, request_id", (lo, hi))
        for rid, at, user, body in rows:
            yield LogRow(rid, at.astimezone(UTC), user, body)

    def count(self) -> int:
        return int(self._db.execute(f"SELECT count(*) FROM {self._t}")[0][0])

    def forget_user(self, user_id: str) -> int:
        with self._db.tx() as conn:
            cur = conn.execute(
                f"UPDATE {self._t} SET user_id = NULL, body = body - 'query' "
                "WHERE user_id = %s", (user_id,))
            return int(cur.rowcount)

    def prune(self, now: datetime | None = None) -> int:
        with self._db.tx() as conn:
            return int(conn.execute(f"DELETE FROM {self._t} WHERE at < %s",
                                    (log_cutoff(self.keep_days, now),)).rowcount)

    def close(self) -> None:
        """The database is closed by its owner (``stores.factory``)."""
