"""What other workers wrote reaches this worker: events, user changes and catalog changes.

Each ``shoprank serve`` worker keeps users' recent history and the live counts in memory.
``POST /v1/events`` updates them only in the worker that took the request, so with
``--workers 2`` the next feed of the same shopper went to a worker that had not seen the view
about half the time. :class:`EventFollower` reads what the other writers appended to the
event log: the log counts the changes of its day files in a memory-mapped file and remembers
the days of the last 64 (``EventLog.changes``, ``changed_days``); a worker compares that count
before each request (well under a microsecond when nothing changed) and, when it moved, reads
the new complete lines of the changed day files from where it stopped. Events are applied in
the order they are read, exactly once per worker: the worker that takes ``POST /v1/events``
also applies its own batch by reading it back from the log.

User and catalog changes made over the API are appended to journals in ``state_dir``
(``users.jsonl``, ``catalog.jsonl``); :class:`JournalTail` hands a worker the lines added since
its last look (one ``stat`` per request when nothing changed), and applying them again in the
worker that wrote them is harmless (an upsert or an erasure twice is the same state).

Limits: what another worker writes while this one starts, after this one read the files and
before it began following them, reaches this worker at its next restart; events of other
users appended between this worker's last read and an erasure (which rewrites day files) are
skipped by this worker until it restarts; a bulk load of more than :data:`MAX_FOLLOW_BYTES`
at once (``shoprank load events`` into a live log) is not replayed in memory (a warning says
so; a restart reads it). Several machines need a shared event stream instead (see
docs/architecture.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from data.eventlog import EventLog
from data.models import Event

log = logging.getLogger(__name__)

MAX_FOLLOW_BYTES = 64 * 1024 * 1024
"""More new bytes than this in one read: skipped (a bulk load), not replayed in memory."""


class EventFollower:
    """Reads the lines appended to ``events`` since the last call and passes their events to
    ``apply`` (thread-safe; starts at the end of the log as it is now)."""

    def __init__(self, events: EventLog, apply: Callable[[list[Event]], None]) -> None:
        self.events = events
        self.apply = apply
        self._lock = threading.Lock()
        self._seen = events.changes()
        self._offsets: dict[str, int] = {p.name: _where(p)[1] for p in events.partitions()}

    def sync(self) -> int:
        """Apply what other writers appended since the last call; returns how many events."""
        if self.events.changes() == self._seen:
            return 0
        with self._lock:
            now = self.events.changes()
            if now == self._seen:
                return 0
            got = self._read_new(self.events.changed_days(self._seen, now))
            self._seen = now
            if got:  # under the lock: events are applied in the order they were read
                self.apply(got)
        return len(got)

    def _read_new(self, days: set[str] | None) -> list[Event]:
        """New lines of the files of ``days`` (None: of every day file)."""
        chunks: list[tuple[Path, bytes]] = []
        total = 0
        paths = self.events.partitions() if days is None else sorted(map(self.events.path_of, days))
        for path in paths:
            size = _where(path)[1]
            start = min(self._offsets.get(path.name, 0), size)  # shorter: rewritten by an erasure
            data = _complete_lines(path, start, size)
            if data:
                chunks.append((path, data))
                total += len(data)
            self._offsets[path.name] = start + len(data)
        if total > MAX_FOLLOW_BYTES:
            log.warning("%d MB were added to the event log at once (a bulk load?); this worker "
                        "applies them to its profiles at its next restart", total // 2**20)
            return []
        got: list[Event] = []
        for path, data in chunks:
            for line in data.splitlines():
                if not line.strip():
                    continue
                try:
                    got.append(Event.model_validate_json(line))
                except ValidationError:
                    log.warning("%s: skipped an unreadable line", path)
        return got


def _complete_lines(path: Path, start: int, size: int) -> bytes:
    """The bytes of ``path`` from ``start`` up to ``size``, cut after the last complete line."""
    if size <= start:
        return b""
    with path.open("rb") as fh:
        fh.seek(start)
        data = fh.read(size - start)
    return data[: data.rfind(b"\n") + 1]


class JournalTail:
    """Passes to ``apply`` the complete lines appended to a file since the last call (starts
    at its end as it is now, or at ``start``), in order, under one lock. A file that was
    replaced (an erasure rewrites the users journal) is read again from its start: replaying
    its upserts and erasures gives the same state."""

    def __init__(
        self,
        path: Path,
        apply: Callable[[list[bytes]], None],
        *,
        start: tuple[int, int] | None = None,
    ) -> None:
        """``start``: (inode, offset) to read from instead of the file's end."""
        self.path = path
        self.apply = apply
        self._lock = threading.Lock()
        self._where = _where(path) if start is None else start

    def position(self) -> tuple[int, int]:
        """(inode, offset) read up to; every line before it has been applied (a call that
        is applying lines holds the lock this waits for)."""
        with self._lock:
            return self._where

    def sync(self) -> int:
        """Apply the new lines; returns how many."""
        if _where(self.path) == self._where:
            return 0
        with self._lock:
            inode, size = _where(self.path)
            old_inode, old_size = self._where
            start = old_size if inode == old_inode and size >= old_size else 0
            data = _complete_lines(self.path, start, size)
            self._where = (inode, start + len(data))
            lines = [line for line in data.splitlines() if line.strip()]
            if lines:  # under the lock: applied in the order they were written
                self.apply(lines)
        return len(lines)


def _where(path: Path) -> tuple[int, int]:
    """(inode, size) of a file; (0, 0) when there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return 0, 0
    return st.st_ino, st.st_size
