"""A ``LogStore`` as requests write to it: :class:`BufferedLog`.

A request only encodes its row (``LogStore.encode``) and appends it to a buffer
(``data.buffered_table.BufferedWriter``); a thread writes the buffer in batches, so a slow or
locked store never delays an answer, and a store that is down keeps the rows for the next
try. Readers flush first. Rows older than the store's ``keep_days`` are pruned at most once an
hour, by the writing thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime

from data.buffered_table import PRUNE_EVERY_SECONDS, BufferedWriter
from stores.errors import StoreError
from stores.protocols import LogStore
from stores.records import LogRow

log = logging.getLogger(__name__)


class BufferedLog:
    def __init__(self, store: LogStore, *, name: str, flush_seconds: float = 1.0,
                 batch: int = 200) -> None:
        self.store = store
        self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        self._writer: BufferedWriter[LogRow] = BufferedWriter(
            self._write, name=name, errors=(StoreError,), flush_seconds=flush_seconds,
            batch=batch, encode=store.encode,
        )

    def _write(self, rows: list[object]) -> None:
        self.store.record_encoded(rows)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
            self.store.prune()

    def append(self, row: LogRow) -> None:
        self._writer.append(row)

    def flush(self) -> None:
        self._writer.flush()

    def read(self, since: datetime | None = None,
             until: datetime | None = None) -> Iterator[LogRow]:
        self.flush()
        return self.store.read(since, until)

    def count(self) -> int:
        self.flush()
        return self.store.count()

    def forget_user(self, user_id: str) -> int:
        self.flush()
        return self.store.forget_user(user_id)

    def close(self) -> None:
        self._writer.close()
