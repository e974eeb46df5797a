"""A SQLite table that requests append to without waiting for the file.

The request log, the served-list log and the search log each keep one row per request in a
SQLite file (WAL mode, shared by the workers of a machine). A write on the request's thread
would wait whenever another worker holds the write lock (docs/decisions.md), so a request
only appends a row to a buffer; a thread of the table writes the buffer in batches
every ``flush_seconds`` (sooner once ``batch`` rows wait), and readers flush first. Rows
older than ``keep_days`` (by the ``at`` column) are pruned at most once an hour, the first
time an hour after opening, so how long a machine has been up never decides whether a fresh
table drops rows.

The owner runs its own queries through :attr:`db` while holding :attr:`lock`. The buffer and
its thread are a :class:`BufferedWriter`, which also serves the request log over the shared
stores (``merch.store_adapters``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from core.memory import small_page_cache
from core.threads import lower_this_threads_priority

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 3600.0
MAX_BUFFERED_ROWS = 20_000
"""Rows a writer keeps waiting at most: what a store that is down leaves buffered. Past it the
oldest rows are dropped (counted in :attr:`BufferedWriter.dropped`, logged): a worker's memory
stays bounded however long the store is away (docs/decisions.md, "Log buffers are bounded")."""
T = TypeVar("T")


def iso(d: datetime) -> str:
    """The ``at`` column's spelling: UTC, microseconds, so text order is time order."""
    return d.astimezone(UTC).isoformat(timespec="microseconds")


class BufferedWriter(Generic[T]):
    """Rows appended by requests, written in batches by a thread of its own through ``write``
    every ``flush_seconds`` or once ``batch`` rows wait. A write that raises one of ``errors``
    keeps its rows for the next try (logged by the thread; raised to a caller of
    :meth:`flush`), up to ``max_rows`` waiting in all: past that the oldest are dropped, so a
    store that stays away never makes the buffer grow with traffic. A row that any other
    error refuses is logged and dropped, its batch's other rows written.

    ``encode``: applied to each row in :meth:`append`, on the appending request's thread;
    ``write`` gets the encoded rows. The per-row Python work then happens where the request
    already holds the interpreter lock, and the thread's write can be one call that releases
    it: a thread that ran Python for a batch made every request that released the lock in
    the meantime (a SQLite read) wait up to the switch interval to get it back."""

    def __init__(
        self,
        write: Callable[[list[Any]], None],
        *,
        name: str,
        errors: tuple[type[BaseException], ...],
        flush_seconds: float = 1.0,
        batch: int = 500,
        encode: Callable[[T], object] | None = None,
        max_rows: int = MAX_BUFFERED_ROWS,
    ) -> None:
        if max_rows < batch:
            raise ValueError(f"max_rows ({max_rows}) must be at least batch ({batch})")
        self._write = write
        self._encode = encode
        self._name = name
        self._errors = errors
        self._write_lock = threading.Lock()
        self._buf_lock = threading.Lock()
        """Guards the buffer only: a request never waits for a write."""
        self._buf: list[Any] = []
        self._batch = batch
        self._max_rows = max_rows
        self.dropped = 0
        """Rows dropped because ``max_rows`` were already waiting."""
        self._flush_seconds = flush_seconds
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"{name}-flush", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # a batch's write yields the cores to the requests when they are all busy
        lower_this_threads_priority()
        while not self._closed:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            if self._closed:
                return
            try:
                self.flush()
            except self._errors:
                log.exception("%s: write failed; will retry", self._name)
            except Exception:  # the thread outlives any error: it is the buffer's only writer
                log.exception("%s: write failed", self._name)

    def append(self, row: T) -> None:
        item = row if self._encode is None else self._encode(row)
        with self._buf_lock:
            self._buf.append(item)
            n = len(self._buf)
            if n > self._max_rows:  # only while writes fail: the thread empties it otherwise
                self._drop_oldest(n - self._max_rows)
            due = n >= self._batch
        if due:
            self._wake.set()

    def flush(self) -> None:
        with self._write_lock:
            with self._buf_lock:
                rows, self._buf = self._buf, []
            if not rows:
                return
            try:
                self._write(rows)
            except self._errors:
                self._keep(rows)
                raise
            except Exception:
                # not a store that is down but rows it refuses: write them one at a time and
                # drop only those, so one bad row never stops the log or costs its batch
                self._write_each(rows)

    def _write_each(self, rows: list[Any]) -> None:
        for k, row in enumerate(rows):
            try:
                self._write([row])
            except self._errors:
                self._keep(rows[k:])
                raise
            except Exception as exc:
                log.error("%s: dropped a row the store refuses: %s: %s", self._name,
                          type(exc).__name__, exc)

    def _keep(self, rows: list[Any]) -> None:
        """Put rows a write failed on back before those appended since, within the bound."""
        with self._buf_lock:
            self._buf[:0] = rows
            over = len(self._buf) - self._max_rows
            if over > 0:
                self._drop_oldest(over)

    def _drop_oldest(self, n: int) -> None:
        """Drop the ``n`` oldest waiting rows (the caller holds the buffer's lock): the newest
        matter most, as events that follow a served list refer to it soon after."""
        del self._buf[:n]
        first = self.dropped == 0
        self.dropped += n
        if first or self.dropped // 10_000 != (self.dropped - n) // 10_000:
            log.warning("%s: the store is not taking rows and %d wait; %d oldest dropped so far",
                        self._name, self._max_rows, self.dropped)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()


class BufferedTable:
    def __init__(
        self,
        path: Path,
        *,
        table: str,
        schema: str,
        columns: int,
        flush_seconds: float = 1.0,
        batch: int = 500,
        keep_days: int = 90,
    ) -> None:
        self.path = path
        self.table = table
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        small_page_cache(self.db)
        self.db.executescript(schema)
        self.db.commit()
        self.lock = threading.Lock()
        """Guards :attr:`db`."""
        self._insert = f"INSERT OR REPLACE INTO {table} VALUES ({','.join('?' * columns)})"
        self._keep = timedelta(days=keep_days)
        self._pruned_at = time.monotonic()
        self._writer: BufferedWriter[tuple[object, ...]] = BufferedWriter(
            self._write_rows, name=f"{table} ({path})", errors=(sqlite3.Error,),
            flush_seconds=flush_seconds, batch=batch,
        )

    def _write_rows(self, rows: list[tuple[object, ...]]) -> None:
        with self.lock:
            try:
                self.db.executemany(self._insert, rows)
                if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
                    self._prune(datetime.now(UTC))
                self.db.commit()
            except sqlite3.Error:
                self.db.rollback()
                raise

    def append(self, row: tuple[object, ...]) -> None:
        self._writer.append(row)

    def flush(self) -> None:
        """Write what is buffered (rows that fail to write stay buffered for the next try)."""
        self._writer.flush()

    def _prune(self, now: datetime) -> int:
        self._pruned_at = time.monotonic()
        cutoff = iso(now - self._keep)
        return self.db.execute(f"DELETE FROM {self.table} WHERE at < ?", (cutoff,)).rowcount

    def prune(self, now: datetime | None = None) -> int:
        """Drop rows older than ``keep_days`` before ``now``; returns how many."""
        self.flush()
        with self.lock:
            n = self._prune(now or datetime.now(UTC))
            self.db.commit()
        return n

    def read(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:  # type: ignore[type-arg]
        """Rows of a query, after this process's buffer is written."""
        self.flush()
        with self.lock:
            return self.db.execute(sql, tuple(args)).fetchall()

    def write(self, sql: str, args: Sequence[object] = ()) -> int:
        """Run an update after this process's buffer is written; returns the rows changed."""
        self.flush()
        with self.lock:
            n = self.db.execute(sql, tuple(args)).rowcount
            self.db.commit()
        return n

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            with self.lock:
                self.db.close()
