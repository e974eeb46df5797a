"""The learned ranker's served lists over the served-list store (``stores.served``): a
request only appends to a buffer (``stores.log_writer.BufferedLog``); training reads every
process's lists."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from data.served_log import ServedList, served_body, served_from
from stores.log_writer import BufferedLog
from stores.protocols import LogStore
from stores.records import LogRow


class ServedLog:
    def __init__(self, store: LogStore, *, flush_seconds: float = 1.0) -> None:
        self._log = BufferedLog(store, name="served lists", flush_seconds=flush_seconds)

    def record(self, served: ServedList) -> None:
        self._log.append(LogRow(served.request_id, served.at, served.user_id,
                                served_body(served)))

    def flush(self) -> None:
        self._log.flush()

    def forget_user(self, user_id: str) -> int:
        """An erased user: their lists stay (for the counts), without their id and query."""
        return self._log.forget_user(user_id)

    def __len__(self) -> int:
        return self._log.count()

    def lists(self, since: datetime | None = None) -> Iterator[ServedList]:
        """Every logged list served at or after ``since``, oldest first."""
        for r in self._log.read(since):
            yield served_from(r.request_id, r.at, r.user_id, r.body)

    def close(self) -> None:
        self._log.close()


def read_served(store: LogStore) -> list[ServedList]:
    """Every list of the served-list store, oldest first."""
    return [served_from(r.request_id, r.at, r.user_id, r.body) for r in store.read()]
