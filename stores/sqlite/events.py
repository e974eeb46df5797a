"""Embedded events: the fsync'ed, day-partitioned JSON Lines log of ``data.eventlog``.

The store is the event log itself (same files, same idempotency index), so the embedded
path keeps today's format and durability; it only adds reading back in time order (the log
keeps arrival order within a day).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from data.errors import EventLogError
from data.eventlog import AppendResult, EventLog
from data.models import Event
from stores.errors import StoreConfigError, StoreUnavailableError

if TYPE_CHECKING:
    import pyarrow as pa


class EmbeddedEvents:
    def __init__(self, root: Path) -> None:
        try:
            self.log = EventLog(root)
        except EventLogError as exc:
            raise StoreConfigError("SHOPRANK_DATABASE_URL", str(exc)) from exc

    def append(self, events: Sequence[Event]) -> AppendResult:
        try:
            return self.log.append(events)
        except EventLogError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def contains(self, event_id: str) -> bool:
        return event_id in self.log

    def count(self) -> int:
        return self.log.count()

    def read_table(
        self, *, since: date | datetime | None = None, until: date | datetime | None = None
    ) -> pa.Table:
        table = self.log.read_table(since=since, until=until)
        if table.num_rows < 2:
            return table
        # stable: events of one instant keep their arrival order
        return table.sort_by([("timestamp", "ascending")])

    def iter_events(
        self, *, since: date | datetime | None = None, until: date | datetime | None = None
    ) -> Iterator[Event]:
        # one day at a time: a day file is in arrival order, days are in time order
        day: list[Event] = []
        current: date | None = None
        for e in self.log.iter_events(since=since, until=until):
            d = e.timestamp.date()
            if d != current and day:
                yield from sorted(day, key=lambda x: x.timestamp)
                day = []
            current = d
            day.append(e)
        yield from sorted(day, key=lambda x: x.timestamp)

    def recent(self, limit: int) -> list[Event]:
        """The last ``limit`` events written, read from the end of the newest day files."""
        return self.log.recent(limit)

    def erase_user(self, user_id: str) -> int:
        try:
            return self.log.erase_user(user_id)
        except EventLogError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def close(self) -> None:
        self.log.close()
