"""The embedded event log: append-only JSON Lines partitioned by day, durable and idempotent.

Layout of ``root`` (``settings.events_dir``)::

    2026-11-23.jsonl   one Event per line (compact JSON, nested context), by UTC day of timestamp
    index.sqlite       event_id primary key (idempotency) + how many bytes of each day are indexed
    .lock              advisory lock: one writer at a time, across processes
    .changes           memory-mapped: a counter of day-file changes (each write or erasure of a
                       day bumps it) and the days of the last 64 changes, so a reader in another
                       process knows when to look for new lines, and in which files

Durability: :meth:`EventLog.append` returns only after the lines are written and fsync'ed
(and the directory too when a day file is created). The id index is updated *after* the log,
so a crash can leave lines that are not yet indexed, never an indexed id without its line.
Before a day is written (and when the log opens) its size is compared with the indexed size:
a longer file is re-indexed from the indexed offset (a torn last line — a write interrupted
by a crash, never acknowledged — is cut off with a warning); a shorter one (an interrupted
erasure) is re-indexed from scratch. So an acknowledged event is never lost or duplicated,
and a client may safely retry a batch that was not acknowledged.

Concurrency: thread-safe. Concurrent ``append`` calls are group-committed: one thread writes
everything queued (one fsync per day file) while the others wait for their result.

Kept in one module (~580 lines): appending, the index's reconciliation and erasure share one
lock, one file layout and the one crash-safety argument above, which should be read together.
"""

from __future__ import annotations

import fcntl
import json
import logging
import mmap
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from core.fsutil import fsync_dir
from core.memory import small_page_cache
from data.errors import EventLogError
from data.models import Event

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

INDEX_FILE = "index.sqlite"
LOCK_FILE = ".lock"
CHANGES_FILE = ".changes"
_RING = 64
"""How many recent day-file changes ``.changes`` remembers the day of."""
_CHANGES_SIZE = 8 * (1 + _RING)
_SUFFIX = ".jsonl"
_SQL_CHUNK = 500
_EMPTY_CONTEXT = ',"context":{}}'


@dataclass(frozen=True)
class AppendResult:
    """Which events were stored by this call and which were already there (or repeated)."""

    accepted: tuple[str, ...]
    duplicates: tuple[str, ...]


@dataclass
class _Request:
    events: list[Event]
    done: bool = False
    result: AppendResult | None = None
    error: BaseException | None = None


def _day_of(ts: datetime) -> str:
    return ts.astimezone(UTC).date().isoformat()


def serialize(event: Event) -> bytes:
    """The event's log line (without the newline)."""
    line = event.model_dump_json(exclude_none=True)
    if line.endswith(_EMPTY_CONTEXT):  # context is the last field; drop it when empty
        line = line[: -len(_EMPTY_CONTEXT)] + "}"
    return line.encode("utf-8")


class EventLog:
    """An append-only, fsync'ed, day-partitioned event log with an idempotency index.

    >>> log = EventLog("var/events")            # doctest: +SKIP
    >>> log.append([event]).accepted            # doctest: +SKIP
    """

    def __init__(self, root: Path | str, *, sync: bool = True) -> None:
        """Open (creating if needed) the log in ``root``.

        ``sync=False`` skips fsync: only for bulk loads you can redo from their source.
        """
        self.root = Path(root)
        self.sync = sync
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EventLogError(
                f"cannot open the event log in {self.root}: {exc.strerror}; "
                "check the path and its permissions (settings.events_dir)"
            ) from exc
        try:
            fd = os.open(self.root / CHANGES_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size < _CHANGES_SIZE:
                    os.ftruncate(fd, _CHANGES_SIZE)
                self._changes = mmap.mmap(fd, _CHANGES_SIZE)
            finally:
                os.close(fd)
        except OSError as exc:
            os.close(self._lock_fd)
            raise EventLogError(
                f"cannot open {self.root / CHANGES_FILE}: {exc.strerror}; check the folder's "
                "permissions and free space"
            ) from exc
        try:
            self._db = sqlite3.connect(
                self.root / INDEX_FILE, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            small_page_cache(self._db)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS ids "
                "(event_id TEXT PRIMARY KEY, day TEXT NOT NULL) WITHOUT ROWID"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS days "
                "(day TEXT PRIMARY KEY, indexed_bytes INTEGER NOT NULL)"
            )
        except sqlite3.Error as exc:
            os.close(self._lock_fd)
            raise EventLogError(
                f"cannot open the event log index {self.root / INDEX_FILE}: {exc}; "
                "check the folder's permissions and free space, or delete the index file "
                "to rebuild it from the day files"
            ) from exc
        self._db_lock = threading.RLock()
        self._cv = threading.Condition()
        self._busy = False
        self._pending: list[_Request] = []
        self._closed = False
        with self._exclusive():
            self._reconcile_all()

    # -- plumbing ------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Thread lock + cross-process file lock around a write."""
        with self._db_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def changes(self) -> int:
        """How many times a day file was written or erased in, by any process."""
        return int(struct.unpack_from("<Q", self._changes, 0)[0])

    def changed_days(self, since: int, until: int) -> set[str] | None:
        """The days whose files changed in changes ``since + 1 … until`` (what :meth:`changes`
        returned before and now); None when the log no longer remembers them all."""
        if until - since > _RING:
            return None
        days = set()
        for seq in range(since + 1, until + 1):
            ordinal = struct.unpack_from("<Q", self._changes, 8 * (1 + seq % _RING))[0]
            if not ordinal:  # not recorded (a log written before days were)
                return None
            days.add(date.fromordinal(ordinal).isoformat())
        if self.changes() - since > _RING:  # overwritten while we read
            return None
        return days

    def path_of(self, day: str) -> Path:
        """The file of a day (``YYYY-MM-DD``), which may not exist yet."""
        return self._path(day)

    def _bump(self, day: str) -> None:
        """Count a change of ``day``'s file; called with the file lock held, after the lines are
        durable. The day is written before the counter, so a reader that sees the counter sees
        it."""
        seq = self.changes() + 1
        struct.pack_into(
            "<Q", self._changes, 8 * (1 + seq % _RING), date.fromisoformat(day).toordinal()
        )
        struct.pack_into("<Q", self._changes, 0, seq)

    def _path(self, day: str) -> Path:
        return self.root / f"{day}{_SUFFIX}"

    def partitions(self) -> list[Path]:
        """Day files, oldest first."""
        return sorted(p for p in self.root.glob(f"*{_SUFFIX}") if len(p.stem) == 10)

    def _indexed_bytes(self, day: str) -> int:
        row = self._db.execute("SELECT indexed_bytes FROM days WHERE day = ?", (day,)).fetchone()
        return int(row[0]) if row else 0

    def _reconcile_all(self) -> None:
        days = {p.stem for p in self.partitions()}
        known = {r[0] for r in self._db.execute("SELECT day FROM days")}
        for day in sorted(days | known):
            self._reconcile(day)

    def _reconcile(self, day: str) -> None:
        """Make the index agree with the day file (see the module docstring)."""
        path = self._path(day)
        indexed = self._indexed_bytes(day)
        size = path.stat().st_size if path.exists() else 0
        if size == indexed:
            return
        if size < indexed:
            log.warning(
                "event log %s is shorter than indexed (%d < %d bytes); re-indexing the day",
                path.name,
                size,
                indexed,
            )
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM ids WHERE day = ?", (day,))
            self._db.execute("DELETE FROM days WHERE day = ?", (day,))
            self._db.execute("COMMIT")
            indexed = 0
            if size == 0:
                return
        with path.open("r+b") as f:
            f.seek(indexed)
            tail = f.read()
            cut = tail.rfind(b"\n") + 1
            if cut < len(tail):
                log.warning(
                    "event log %s: dropped a torn last line of %d bytes (an unacknowledged "
                    "write interrupted by a crash)",
                    path.name,
                    len(tail) - cut,
                )
                f.truncate(indexed + cut)
                f.flush()
                os.fsync(f.fileno())
                tail = tail[:cut]
        ids = []
        for n, line in enumerate(tail.split(b"\n")):
            if not line.strip():
                continue
            try:
                ids.append((json.loads(line)["event_id"], day))
            except (ValueError, KeyError, TypeError):
                log.warning(
                    "event log %s: line %d after byte %d is not an event; readers skip it",
                    path.name,
                    n + 1,
                    indexed,
                )
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO ids(event_id, day) VALUES (?, ?)", ids)
        self._db.execute(
            "INSERT OR REPLACE INTO days(day, indexed_bytes) VALUES (?, ?)", (day, indexed + cut)
        )
        self._db.execute("COMMIT")
        if ids:
            log.info(
                "event log %s: indexed %d events found after the last acknowledged write",
                path.name,
                len(ids),
            )

    def _known(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[i : i + _SQL_CHUNK]
            q = f"SELECT event_id FROM ids WHERE event_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self._db.execute(q, chunk))
        return found

    # -- writing -------------------------------------------------------------------------

    def append(self, events: Iterable[Event]) -> AppendResult:
        """Store new events durably; events whose id is already stored are skipped.

        Returns only after the new lines are on disk (fsync). Safe to call from many
        threads: concurrent calls are written together.
        """
        req = _Request(list(events))
        if not req.events:
            return AppendResult((), ())
        with self._cv:
            if self._closed:
                raise EventLogError("the event log is closed")
            self._pending.append(req)
            while self._busy and not req.done:
                self._cv.wait()
            if not req.done:
                self._busy = True
                batch, self._pending = self._pending, []
            else:
                batch = []
        if batch:
            try:
                self._write(batch)
            except BaseException as exc:  # every waiting caller gets the failure
                for r in batch:
                    r.error = exc
            finally:
                with self._cv:
                    self._busy = False
                    for r in batch:
                        r.done = True
                    self._cv.notify_all()
        if req.error is not None:
            if isinstance(req.error, EventLogError):
                raise req.error
            raise EventLogError(
                f"could not write to the event log in {self.root}: {req.error}"
            ) from req.error
        assert req.result is not None
        return req.result

    def append_many(self, events: Iterable[Event], *, batch_size: int = 10_000) -> tuple[int, int]:
        """Append a long stream in batches; returns (accepted, duplicates)."""
        acc = dup = 0
        buf: list[Event] = []
        for e in events:
            buf.append(e)
            if len(buf) >= batch_size:
                r = self.append(buf)
                acc, dup, buf = acc + len(r.accepted), dup + len(r.duplicates), []
        if buf:
            r = self.append(buf)
            acc, dup = acc + len(r.accepted), dup + len(r.duplicates)
        return acc, dup

    def _write(self, batch: list[_Request]) -> None:
        # first occurrence of an id wins, within the batch and across requests
        owner: dict[str, _Request] = {}
        firsts: list[Event] = []
        for r in batch:
            for e in r.events:
                if e.event_id not in owner:
                    owner[e.event_id] = r
                    firsts.append(e)
        by_day: dict[str, list[Event]] = {}
        for e in firsts:
            by_day.setdefault(_day_of(e.timestamp), []).append(e)
        stored: set[str] = set()
        with self._exclusive():
            for day in by_day:
                self._reconcile(day)
            known = self._known([e.event_id for e in firsts])
            sizes: dict[str, int] = {}
            new_ids: list[tuple[str, str]] = []
            for day, rows in sorted(by_day.items()):
                lines = [serialize(e) for e in rows if e.event_id not in known]
                if not lines:
                    continue
                path = self._path(day)
                created = not path.exists()
                with path.open("ab") as f:
                    f.write(b"\n".join(lines) + b"\n")
                    f.flush()
                    if self.sync:
                        os.fsync(f.fileno())
                    sizes[day] = f.tell()
                if created and self.sync:
                    fsync_dir(self.root)
                new_ids += [(e.event_id, day) for e in rows if e.event_id not in known]
            # only now, with the lines durable, record the ids
            if new_ids:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO ids(event_id, day) VALUES (?, ?)", new_ids)
                self._db.executemany(
                    "INSERT OR REPLACE INTO days(day, indexed_bytes) VALUES (?, ?)",
                    list(sizes.items()),
                )
                self._db.execute("COMMIT")
                for day in sizes:
                    self._bump(day)
            stored = {i for i, _ in new_ids}
        for r in batch:
            acc: list[str] = []
            dup: list[str] = []
            taken: set[str] = set()
            for e in r.events:
                if e.event_id in stored and owner[e.event_id] is r and e.event_id not in taken:
                    acc.append(e.event_id)
                    taken.add(e.event_id)
                else:
                    dup.append(e.event_id)
            r.result = AppendResult(tuple(acc), tuple(dup))

    def erase_user(self, user_id: str) -> int:
        """Remove every event of ``user_id`` (GDPR erasure); returns how many were removed.

        Each day file is rewritten to a temporary file, fsync'ed and atomically renamed.
        """
        needle = json.dumps(user_id, ensure_ascii=False)[1:-1].encode("utf-8")
        removed = 0
        with self._cv:
            while self._busy:
                self._cv.wait()
            self._busy = True
        try:
            with self._exclusive():
                for path in self.partitions():
                    day = path.stem
                    self._reconcile(day)
                    data = path.read_bytes()
                    if needle not in data:
                        continue
                    keep, gone = [], []
                    for line in data.split(b"\n"):
                        if not line:
                            continue
                        if needle in line:
                            try:
                                obj = json.loads(line)
                            except ValueError:
                                obj = None
                            if isinstance(obj, dict) and obj.get("user_id") == user_id:
                                gone.append(obj.get("event_id"))
                                continue
                        keep.append(line)
                    if not gone:
                        continue
                    tmp = path.with_suffix(".jsonl.tmp")
                    with tmp.open("wb") as f:
                        if keep:
                            f.write(b"\n".join(keep) + b"\n")
                        f.flush()
                        os.fsync(f.fileno())
                        size = f.tell()
                    os.replace(tmp, path)
                    fsync_dir(self.root)
                    self._db.execute("BEGIN")
                    self._db.executemany("DELETE FROM ids WHERE event_id = ?", [(g,) for g in gone])
                    self._db.execute(
                        "INSERT OR REPLACE INTO days(day, indexed_bytes) VALUES (?, ?)", (day, size)
                    )
                    self._db.execute("COMMIT")
                    self._bump(day)
                    removed += len(gone)
        finally:
            with self._cv:
                self._busy = False
                self._cv.notify_all()
        log.info("erased %d events of one user from the event log", removed)
        return removed

    # -- reading -------------------------------------------------------------------------

    def __contains__(self, event_id: object) -> bool:
        with self._db_lock:
            return bool(
                self._db.execute("SELECT 1 FROM ids WHERE event_id = ?", (event_id,)).fetchone()
            )

    def count(self) -> int:
        """Number of stored events (from the index)."""
        with self._db_lock:
            return int(self._db.execute("SELECT COUNT(*) FROM ids").fetchone()[0])

    def _selected(self, since: date | datetime | None, until: date | datetime | None) -> list[Path]:
        lo = _as_day(since)
        hi = _as_day(until)
        return [
            p
            for p in self.partitions()
            if (lo is None or p.stem >= lo) and (hi is None or p.stem <= hi)
        ]

    def iter_events(
        self, *, since: date | datetime | None = None, until: date | datetime | None = None
    ) -> Iterator[Event]:
        """Every stored event, day by day (within a day in arrival order).

        ``since``/``until`` select day files (inclusive); a torn or unreadable line is
        skipped with a warning.
        """
        for path in self._selected(since, until):
            with path.open("rb") as f:
                for n, line in enumerate(f, start=1):
                    if not line.endswith(b"\n"):
                        log.warning("%s:%d: skipped a torn last line", path, n)
                        break
                    if not line.strip():
                        continue
                    try:
                        yield Event.model_validate_json(line)
                    except ValidationError as exc:
                        log.warning(
                            "%s:%d: skipped an unreadable line (%s)",
                            path,
                            n,
                            exc.errors()[0]["msg"],
                        )

    def recent(self, limit: int) -> list[Event]:
        """The last ``limit`` events written (file order, oldest first), read from the end of
        the newest day files backwards: what a preview samples costs the same with a week or
        a year of events in the log. Unreadable lines are skipped."""
        out: list[Event] = []
        for path in reversed(self.partitions()):
            want = limit - len(out)
            if want <= 0:
                break
            lines = _last_lines(path, want)
            got = []
            for line in lines:
                try:
                    got.append(Event.model_validate_json(line))
                except ValidationError:
                    continue
            out[:0] = got
        return out[-limit:] if limit > 0 else []

    def read_table(
        self, *, since: date | datetime | None = None, until: date | datetime | None = None
    ) -> pa.Table:
        """The stored events as one Arrow table (``data.event_table.EVENT_SCHEMA``)."""
        from data.loaders import read_events_table

        return read_events_table(self._selected(since, until))

    def close(self) -> None:
        with self._cv:
            self._closed = True
            while self._busy:
                self._cv.wait()
        with self._db_lock:
            self._db.close()
            os.close(self._lock_fd)
            self._changes.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _last_lines(path: Path, n: int, block: int = 1 << 20) -> list[bytes]:
    """The last ``n`` complete lines of ``path`` (a torn last line is left out), reading
    blocks from the end until enough newlines are in."""
    with path.open("rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    if not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    lines = [x for x in data.split(b"\n") if x.strip()]
    if pos > 0:
        lines = lines[1:]  # the first one may be cut
    return lines[-n:]


def _as_day(v: date | datetime | None) -> str | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return _day_of(v if v.tzinfo else v.replace(tzinfo=UTC))
    return v.isoformat()
