"""The served-list log: what each ranked list showed, item by item, for the learned ranker.

The request log (``merch.request_log``) keeps one row per request for
attribution; this log keeps the list itself — each item in the order shown with the score
breakdown the blend gave it (every candidate source's score and blend share) — which is what
``training.ranker_data`` turns into training lists once events tell what followed. One SQLite
file (``state/served.sqlite``) behind a :class:`data.buffered_table.BufferedTable`: a request
only appends to a buffer; rows older than ``keep_days`` go.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from data.buffered_table import BufferedTable, iso

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


class ServedLog:
    def __init__(self, path: Path, *, flush_seconds: float = 1.0, batch: int = 200,
                 keep_days: int = 30) -> None:
        self.path = path
        self._table = BufferedTable(
            path, table="served", columns=8, flush_seconds=flush_seconds, batch=batch,
            keep_days=keep_days,
            schema="""
            CREATE TABLE IF NOT EXISTS served (
                request_id TEXT PRIMARY KEY, at TEXT NOT NULL, surface TEXT NOT NULL,
                user_id TEXT, variant TEXT, ranker TEXT, query TEXT, items TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS served_at ON served (at);
            """,
        )

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> ServedLog:
        return cls(state_dir / FILE_NAME)

    def record(self, served: ServedList) -> None:
        # 7 significant digits: what the float32 features keep, half the bytes of a float64
        items = json.dumps([[i, {k: float(f"{v:.7g}") for k, v in bd.items()}]
                            for i, bd in served.items], separators=(",", ":"))
        self._table.append((served.request_id, iso(served.at), served.surface, served.user_id,
                            served.variant, served.ranker_version, served.query, items))

    def flush(self) -> None:
        self._table.flush()

    def forget_user(self, user_id: str) -> int:
        """An erased user: their lists stay (for the counts), without their id."""
        return self._table.write(
            "UPDATE served SET user_id = NULL, query = NULL WHERE user_id = ?", (user_id,))

    def __len__(self) -> int:
        return int(self._table.read("SELECT COUNT(*) FROM served")[0][0])

    def lists(self, since: datetime | None = None) -> Iterator[ServedList]:
        """Every logged list served at or after ``since``, oldest first."""
        rows = self._table.read(
            "SELECT request_id, at, surface, user_id, variant, ranker, query, items "
            "FROM served WHERE at >= ? ORDER BY at, request_id", (iso(since) if since else "",)
        )
        for rid, at, surface, user, variant, ranker, query, items in rows:
            yield ServedList(rid, datetime.fromisoformat(at), surface, user,
                             tuple((i, bd) for i, bd in json.loads(items)), variant, ranker, query)

    def close(self) -> None:
        self._table.close()


def read_served(path: Path) -> list[ServedList]:
    """Every list of a served log file (empty when there is none)."""
    if not path.exists():
        return []
    sl = ServedLog(path)
    try:
        return list(sl.lists())
    finally:
        sl.close()

