"""Shared request log in PostgreSQL: ``requests`` partitioned by range of ``at``, one
partition per UTC day (``requests_YYYYMMDD``), created when a row of a new day arrives and
dropped whole by retention.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg

from stores.postgres.db import SLOW_SECONDS, PgDatabase
from stores.records import SERVED_COLUMNS, ServedList

_COLS = "request_id, at, surface, user_id, experiment, variant, query, item_id, items"
# each column an array parameter (``items`` as the text of each row's array;
# PgDatabase.insert_columns), where a multi-row VALUES list was a new statement of nine
# placeholders a row, parsed by psycopg in Python and planned by the server on every batch
_INSERT = (
    f"INSERT INTO requests ({_COLS}) SELECT r, a, s, u, e, v, q, i, it::text[] "
    "FROM unnest(%b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], "
    "%b::text[], %b::text[], %b::text[], %b::text[]) AS t(r, a, s, u, e, v, q, i, it) "
    "ON CONFLICT (request_id, at) DO UPDATE SET surface = excluded.surface, "
    "user_id = excluded.user_id, experiment = excluded.experiment, variant = excluded.variant, "
    "query = excluded.query, item_id = excluded.item_id, items = excluded.items"
).encode()
_PARTITION = re.compile(r"^requests_(\d{8})$")
_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.requests'))"


def array_text(values: Sequence[str]) -> str:
    """PostgreSQL's text form of a one-dimensional text array: every element quoted, with its
    backslashes and double quotes escaped (so commas, braces, spaces and ``NULL`` are data)."""
    return "{" + ",".join(
        '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values
    ) + "}"


def _served(r: tuple[Any, ...]) -> ServedList:
    return ServedList(r[0], r[1].astimezone(UTC), r[2], r[3], r[4], r[5], r[6], r[7], tuple(r[8]))


class PgRequestLog:
    def __init__(self, db: PgDatabase, *, keep_days: int) -> None:
        self._db = db
        self.keep_days = keep_days
        self._known: set[date] = set(self.days())

    def days(self) -> list[date]:
        rows = self._db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'requests'::regclass"
        )
        days = [m.group(1) for (name,) in rows if (m := _PARTITION.match(name))]
        return sorted(datetime.strptime(d, "%Y%m%d").date() for d in days)

    def _ensure(self, days: Iterable[date]) -> None:
        missing = [d for d in days if d not in self._known]
        if not missing:
            return
        with self._db.tx(SLOW_SECONDS) as conn:
            conn.execute(_LOCK)  # replicas creating the same day wait for each other
            for d in missing:
                lo = datetime.combine(d, time(), tzinfo=UTC)
                hi = lo + timedelta(days=1)
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS requests_{d:%Y%m%d} PARTITION OF requests "
                    f"FOR VALUES FROM ('{lo.isoformat()}') TO ('{hi.isoformat()}')"
                )
        self._known.update(missing)

    def record(self, rows: Sequence[ServedList]) -> None:
        self.record_encoded([self.encode(r) for r in rows])

    def encode(self, row: ServedList) -> tuple[Any, ...]:
        """The row's columns, its items as one array literal."""
        return (row.request_id, row.at, row.surface, row.user_id, row.experiment, row.variant,
                row.query, row.item_id, array_text(row.items))

    def record_encoded(self, rows: Sequence[object]) -> None:
        if not rows:
            return
        values: Sequence[tuple[Any, ...]] = rows  # type: ignore[assignment]  # encode()'s
        days = {r[1].astimezone(UTC).date() for r in values}
        self._ensure(days)
        # the last row of a (request id, time) wins, as if recorded one after the other
        latest = {(r[0], r[1]): r for r in values}
        ordered = [latest[k] for k in sorted(latest)]  # one lock order for concurrent writers
        # autocommitted; this store's connections commit without waiting for the WAL flush
        # (synchronous_commit=off, see stores.factory), like the embedded log's
        # synchronous=NORMAL: a crash may lose the last moment, never corrupt
        try:
            self._db.insert_columns(_INSERT, ordered)
        except psycopg.errors.CheckViolation:
            # "no partition found for row": another replica's retention dropped a day we knew
            self._known.clear()
            self._known.update(self.days())
            self._ensure(days)
            self._db.insert_columns(_INSERT, ordered)

    def lookup(self, request_ids: Iterable[str]) -> dict[str, ServedList]:
        ids = list(dict.fromkeys(request_ids))
        if not ids:
            return {}
        rows = self._db.execute(
            f"SELECT {_COLS} FROM requests WHERE request_id = ANY(%s) ORDER BY at", (ids,)
        )
        return {r[0]: _served(r) for r in rows}  # the latest row of an id wins

    def lookup_columns(
        self,
        request_ids: Sequence[str],
        *,
        experiment: str | None = None,
        columns: Sequence[str] = SERVED_COLUMNS,
    ) -> dict[str, list[str | None]]:
        unknown = [c for c in columns if c not in SERVED_COLUMNS]
        if unknown:
            raise ValueError(f"columns: unknown {unknown}; choose from {SERVED_COLUMNS}")
        names = ["request_id", *(c for c in columns if c != "request_id")]
        out: dict[str, list[str | None]] = {c: [] for c in columns}
        if not request_ids:
            return out
        sql = (
            f"SELECT DISTINCT ON (request_id) {', '.join(names)} FROM requests "
            "WHERE request_id = ANY(%s)"
        )
        args: list[Any] = [list(dict.fromkeys(request_ids))]
        if experiment is not None:
            sql += " AND experiment = %s"
            args.append(experiment)
        with self._db.tx(SLOW_SECONDS) as conn:
            rows = conn.execute(sql + " ORDER BY request_id, at DESC", args).fetchall()
        for name in columns:
            j = names.index(name)
            out[name] = [r[j] for r in rows]
        return out

    def recent(self, surface: str | None = None, limit: int = 1000) -> list[ServedList]:
        if surface is None:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM requests ORDER BY at DESC LIMIT %s", (limit,)
            )
        else:
            rows = self._db.execute(
                f"SELECT {_COLS} FROM requests WHERE surface = %s ORDER BY at DESC LIMIT %s",
                (surface, limit),
            )
        return [_served(r) for r in rows]

    def forget_user(
        self, user_id: str, *, served_between: tuple[datetime, datetime] | None = None
    ) -> int:
        sql = "UPDATE requests SET user_id = NULL, query = NULL WHERE user_id = %s"
        args: list[Any] = [user_id]
        if served_between is not None:
            sql += " AND at >= %s AND at <= %s"
            args += list(served_between)
        with self._db.tx(SLOW_SECONDS) as conn:
            return int(conn.execute(sql, args).rowcount)

    def prune(self, now: datetime | None = None) -> int:
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=self.keep_days)).astimezone(UTC)
        old = [d for d in self.days() if d < cutoff.date()]
        if not old:
            return 0
        with self._db.tx(SLOW_SECONDS) as conn:
            conn.execute(_LOCK)
            for d in old:
                conn.execute(f"DROP TABLE IF EXISTS requests_{d:%Y%m%d}")
        self._known.difference_update(old)
        return len(old)

    def close(self) -> None:
        """The database is closed by its owner."""
