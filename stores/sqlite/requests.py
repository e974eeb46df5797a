"""Embedded request log: ``requests.sqlite``, one table per UTC day (``requests_YYYYMMDD``).

Retention drops a day's table whole (no row-by-row delete, no vacuum of a big table); a
look-up by request id walks the days newest first and stops once every id is found (most
look-ups are for lists served minutes ago).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from stores.records import SERVED_COLUMNS, ServedList, json_text
from stores.sqlite.db import Migration, SqliteDb
from stores.sqlite.logs import write_json_rows

MIGRATIONS: tuple[Migration, ...] = (
    (1, "day partitions", "CREATE TABLE IF NOT EXISTS request_days (day TEXT PRIMARY KEY)"),
)
_COLS = "request_id, at, surface, user_id, experiment, variant, query, item_id, items"


def _table(day: date) -> str:
    return f"requests_{day:%Y%m%d}"


def _ts(d: datetime) -> str:
    return d.astimezone(UTC).isoformat()


def _served(r: tuple[str | None, ...]) -> ServedList:
    return ServedList(
        request_id=r[0] or "",
        at=datetime.fromisoformat(r[1] or ""),
        surface=r[2] or "",
        user_id=r[3],
        experiment=r[4],
        variant=r[5],
        query=r[6],
        item_id=r[7],
        items=tuple(json.loads(r[8] or "[]")),
    )


class SqliteRequestLog:
    def __init__(self, path: Path, *, keep_days: int, timeout: float) -> None:
        self.keep_days = keep_days
        self._db = SqliteDb(path, MIGRATIONS, timeout=timeout, synchronous="NORMAL")

    def days(self) -> list[date]:
        with self._db.read() as db:
            rows = db.execute("SELECT day FROM request_days ORDER BY day").fetchall()
        return [date.fromisoformat(r[0]) for r in rows]

    def _newest_first(self) -> list[date]:
        return self.days()[::-1]

    def record(self, rows: Sequence[ServedList]) -> None:
        self.record_encoded([self.encode(r) for r in rows])

    def encode(self, row: ServedList) -> tuple[date, str]:
        """The row's UTC day and its columns as one JSON array."""
        at = row.at.astimezone(UTC)
        return at.date(), json_text(
            (row.request_id, at.isoformat(), row.surface, row.user_id, row.experiment,
             row.variant, row.query, row.item_id, json_text(list(row.items))))

    def record_encoded(self, rows: Sequence[object]) -> None:
        by_day: dict[date, list[str]] = {}
        for day, values in rows:  # type: ignore[misc]  # encode() made (day, str) rows
            by_day.setdefault(day, []).append(values)
        if not by_day:
            return
        with self._db.tx() as db:
            for day, values in by_day.items():
                t = _table(day)
                # every time (a no-op when the day exists): another process may have pruned it
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {t} (request_id TEXT PRIMARY KEY, "
                    "at TEXT NOT NULL, surface TEXT NOT NULL, user_id TEXT, experiment TEXT, "
                    "variant TEXT, query TEXT, item_id TEXT, items TEXT NOT NULL)"
                )
                db.execute(f"CREATE INDEX IF NOT EXISTS {t}_at ON {t} (at)")
                db.execute("INSERT OR IGNORE INTO request_days VALUES (?)", (day.isoformat(),))
                write_json_rows(db, f"INSERT OR REPLACE INTO {t}", 9, values)

    def lookup(self, request_ids: Iterable[str]) -> dict[str, ServedList]:
        todo = list(dict.fromkeys(request_ids))
        out: dict[str, ServedList] = {}
        with self._db.read() as db:
            for day in self._newest_first():
                if not todo:
                    break
                for i in range(0, len(todo), 500):
                    chunk = todo[i : i + 500]
                    q = (
                        f"SELECT {_COLS} FROM {_table(day)} "
                        f"WHERE request_id IN ({','.join('?' * len(chunk))})"
                    )
                    for r in db.execute(q, chunk):
                        out.setdefault(r[0], _served(r))
                todo = [i for i in todo if i not in out]
        return out

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
        rows: dict[str, tuple[str | None, ...]] = {}
        cols = ", ".join(f"r.{c}" for c in names)
        where, params = ("WHERE r.experiment = ?", (experiment,)) if experiment else ("", ())
        with self._db.tx() as db:  # the temporary table of wanted ids is written
            db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (request_id TEXT PRIMARY KEY)")
            db.execute("DELETE FROM wanted")
            db.executemany(
                "INSERT OR IGNORE INTO wanted VALUES (?)", ((i,) for i in request_ids)
            )
            for day in self._newest_first():
                sql = (
                    f"SELECT {cols} FROM wanted w JOIN {_table(day)} r "
                    f"ON r.request_id = w.request_id {where}"
                )
                for r in db.execute(sql, params):
                    rows.setdefault(r[0], r)
            db.execute("DELETE FROM wanted")
        for name in columns:
            j = names.index(name)
            out[name] = [r[j] for r in rows.values()]
        return out

    def recent(self, surface: str | None = None, limit: int = 1000) -> list[ServedList]:
        out: list[ServedList] = []
        with self._db.read() as db:
            for day in self._newest_first():
                if len(out) >= limit:
                    break
                sql = f"SELECT {_COLS} FROM {_table(day)}"
                args: tuple[object, ...] = (limit - len(out),)
                if surface is not None:
                    sql += " WHERE surface = ?"
                    args = (surface, limit - len(out))
                out += [_served(r) for r in db.execute(sql + " ORDER BY at DESC LIMIT ?", args)]
        return out

    def forget_user(
        self, user_id: str, *, served_between: tuple[datetime, datetime] | None = None
    ) -> int:
        n = 0
        with self._db.tx() as db:
            for day in self._newest_first():
                sql = f"UPDATE {_table(day)} SET user_id = NULL, query = NULL WHERE user_id = ?"
                args: tuple[str, ...] = (user_id,)
                if served_between is not None:
                    lo, hi = served_between
                    if not lo.astimezone(UTC).date() <= day <= hi.astimezone(UTC).date():
                        continue
                    sql += " AND at >= ? AND at <= ?"
                    args = (user_id, _ts(lo), _ts(hi))
                n += db.execute(sql, args).rowcount
        return n

    def prune(self, now: datetime | None = None) -> int:
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=self.keep_days)).astimezone(UTC)
        old = [d for d in self.days() if d < cutoff.date()]
        if not old:
            return 0
        with self._db.tx() as db:
            for day in old:
                db.execute(f"DROP TABLE IF EXISTS {_table(day)}")
                db.execute("DELETE FROM request_days WHERE day = ?", (day.isoformat(),))
        return len(old)

    def close(self) -> None:
        self._db.close()

