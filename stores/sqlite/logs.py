"""Embedded telemetry logs: ``logs.sqlite``, one table per log (``log_<name>``).

Rows are keyed by request id; the body is JSON text. Retention deletes rows older than
``keep_days`` (the logs are small next to the request log: a row per search or per ranked
list, written in batches).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from stores.records import LOG_NAMES, LogRow, json_text, log_cutoff, log_table
from stores.sqlite.db import Migration, SqliteDb


def _migrations() -> tuple[Migration, ...]:
    script = ";".join(
        f"CREATE TABLE IF NOT EXISTS log_{n} (request_id TEXT PRIMARY KEY, at TEXT NOT NULL, "
        f"user_id TEXT, body TEXT NOT NULL); "
        f"CREATE INDEX IF NOT EXISTS log_{n}_at ON log_{n} (at, request_id); "
        f"CREATE INDEX IF NOT EXISTS log_{n}_user ON log_{n} (user_id)"
        for n in LOG_NAMES
    )
    return ((1, "telemetry logs", script),)


def _ts(d: datetime) -> str:
    return d.astimezone(UTC).isoformat()


def write_json_rows(
    conn: sqlite3.Connection, insert: str, columns: int, rows: Sequence[object]
) -> None:
    """``insert`` (``INSERT … INTO t``) of ``rows``, each a JSON array of ``columns`` values,
    in one statement over ``json_each`` of the rows joined into one array: the writing thread
    makes one call that releases the interpreter lock while SQLite reads the batch, where
    ``executemany`` took the lock back for every row. The caller holds the transaction. Rows
    are inserted in their order, so the last of two rows with one key wins.

    SQLite's JSON reader ends a string at an escaped NUL character, so a batch holding one
    is written row by row with ``executemany`` instead (the API refuses NUL in parameters;
    this keeps the log exact whatever a caller writes)."""
    batch = "[" + ",".join(rows) + "]"  # type: ignore[arg-type]  # encode() made str rows
    if "\\u0000" in batch:
        conn.executemany(
            f"{insert} VALUES ({', '.join('?' * columns)})",
            [json.loads(r) for r in rows],  # type: ignore[arg-type]
        )
    else:
        conn.execute(
            f"{insert} SELECT {', '.join(f'value ->> {k}' for k in range(columns))} "
            "FROM json_each(?) ORDER BY key",
            (batch,),
        )


def open_log_db(path: Path, *, timeout: float) -> SqliteDb:
    """The logs' file (shared by every log of one home)."""
    return SqliteDb(path, _migrations(), timeout=timeout, synchronous="NORMAL")


class SqliteLog:
    def __init__(self, db: SqliteDb, name: str, *, keep_days: int) -> None:
        self._db = db
        self._t = log_table(name)
        self.keep_days = keep_days

    def record(self, rows: Sequence[LogRow]) -> None:
        self.record_encoded([self.encode(r) for r in rows])

    def encode(self, row: LogRow) -> str:
        """The row as one JSON array of its columns (the body as JSON text inside it)."""
        return json_text((row.request_id, _ts(row.at), row.user_id, json_text(dict(row.body))))

    def record_encoded(self, rows: Sequence[object]) -> None:
        if not rows:
            return
        with self._db.tx() as db:
            write_json_rows(db, f"INSERT OR REPLACE INTO {self._t}", 4, rows)

    def read(self, since: datetime | None = None,
             until: datetime | None = None) -> Iterator[LogRow]:
        lo = _ts(since) if since else ""
        hi = _ts(until) if until else "9999"
        with self._db.read() as db:
            rows = db.execute(
                f"SELECT request_id, at, user_id, body FROM {self._t} "
                "WHERE at >= ? AND at < ? ORDER BY at, request_id", (lo, hi)
            ).fetchall()
        for rid, at, user, body in rows:
            yield LogRow(rid, datetime.fromisoformat(at), user, json.loads(body))

    def count(self) -> int:
        with self._db.read() as db:
            return int(db.execute(f"SELECT count(*) FROM {self._t}").fetchone()[0])

    def forget_user(self, user_id: str) -> int:
        with self._db.tx() as db:
            cur = db.execute(
                f"UPDATE {self._t} SET user_id = NULL, body = json_remove(body, '$.query') "
                "WHERE user_id = ?", (user_id,))
            return int(cur.rowcount)

    def prune(self, now: datetime | None = None) -> int:
        with self._db.tx() as db:
            return int(db.execute(f"DELETE FROM {self._t} WHERE at < ?",
                                  (_ts(log_cutoff(self.keep_days, now)),)).rowcount)

    def close(self) -> None:
        """The file is closed by its owner (``stores.factory``)."""
