"""Ranked feeds kept by request id, so page 2 of a feed never repeats page 1.

``GET /v1/feed`` ranks a 200-deep list on page 1 and stores it under
``"<request_id>|<user_id>|<category>"``; later pages with the same request id read it back.
A stored list is **write-once until it expires**: :meth:`RankedListStore.put` keeps the list
already stored under a live key and returns *that* one, so two workers that rank the same
key at the same time still serve one list.

Two stores behind one :class:`RankedListStore` protocol:

* :class:`SqliteRankedListCache` (the default, ``feed_cache_backend = "sqlite"``): one SQLite
  file under ``state_dir`` shared by every worker process of one machine (WAL,
  ``synchronous=OFF``: it is a cache, losing it on a power cut only re-ranks). Bounded by
  ``feed_cache_size`` (oldest first) and ``feed_cache_ttl_seconds``; expired and surplus rows
  are pruned every ``prune_every`` writes. A corrupt or locked file never fails a request:
  a read is a miss (the feed is ranked again) and a log line says how to fix it. There is no
  in-process front: a select is ≈ 25 µs, most of a get is building the 200 ``ScoredItem``
  objects (which an in-process LRU pays too), and a front could serve a list that another
  worker replaced after the row was evicted (bench/feed_cache.py has the numbers).
* :class:`RankedListCache`: an in-process LRU, for a single process (tests, notebooks).

Several API replicas on *different* machines need a store they all reach — an OpenSearch
index (key → body document with a ``created`` field and a TTL query) or Redis
(``SET key body NX EX ttl`` is exactly "write-once until it expires") — implementing the
same two methods and using :func:`encode_ranked` / :func:`decode_ranked` for the body.

Bodies are compact bytes (≈ 5 KB for a 200-item feed): the scores as raw doubles (exact),
then JSON with the ids, each item's reasons as an index into the list's distinct reason sets,
the list's context and assignment, and score breakdowns only when ranked with ``debug``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ranking.hooks import Assignment
from ranking.pipeline import Ranked
from ranking.types import RankContext, Reason, ScoredItem

if TYPE_CHECKING:
    from core.settings import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")

FEED_CACHE_FILE = "feed_cache.sqlite"
_FORMAT = 1
"""Body format version; a body of another version reads as a miss."""
_EMPTY: Mapping[str, float] = MappingProxyType({})
"""The breakdown of every item of a list kept without breakdowns (immutable, so shared)."""


class RankedListStore(Protocol):
    """Where ranked feeds live between page 1 and the following pages."""

    def get(self, key: str) -> Ranked | None:
        """The list stored under ``key``, or None when absent, expired or unreadable."""
        ...

    def put(self, key: str, items: Ranked, *, keep_breakdown: bool = False) -> Ranked:
        """Store ``items`` unless a live list is already stored under ``key``; return the
        list now stored (the one to serve). Score breakdowns are kept only when asked."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Drop every list ranked for ``user_id`` (an erasure); returns how many."""
        ...


def user_of_key(key: str, user_id: str) -> bool:
    """Whether ``key`` (``"<request_id>|<user_id>|<category>"``; request ids hold no ``|``)
    was ranked for ``user_id`` (or for an id that starts with ``user_id|``: a cache may
    forget too much, never too little)."""
    _, _, rest = key.partition("|")
    return rest.startswith(user_id + "|")


def open_feed_cache(settings: Settings) -> RankedListStore:
    """The store the settings name (``feed_cache_backend``)."""
    if settings.feed_cache_backend == "memory":
        return RankedListCache(settings.feed_cache_size, settings.feed_cache_ttl_seconds)
    return SqliteRankedListCache(
        settings.state_dir / FEED_CACHE_FILE,
        settings.feed_cache_size,
        settings.feed_cache_ttl_seconds,
    )


# --------------------------------------------------------------------------- in-process


class RankedListCache:
    """Ranked lists by request id in this process only, bounded by size (LRU) and age.

    Lists are kept packed — parallel tuples of ids, scores and reasons, no ``ScoredItem``
    objects (fewer objects for the garbage collector) and no breakdowns unless asked."""

    def __init__(self, max_size: int, ttl_seconds: float) -> None:
        self._data: OrderedDict[str, tuple[float, _Packed]] = OrderedDict()
        self._max = max_size
        self._ttl = ttl_seconds
        self._lock = threading.Lock()

    def get(self, key: str) -> Ranked | None:
        with self._lock:
            got = self._data.get(key)
            if got is None:
                return None
            if time.monotonic() - got[0] > self._ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            packed = got[1]
        return packed.unpack()

    def forget_user(self, user_id: str) -> int:
        with self._lock:
            gone = [k for k in self._data if user_of_key(k, user_id)]
            for k in gone:
                del self._data[k]
        return len(gone)

    def put(self, key: str, items: Ranked, *, keep_breakdown: bool = False) -> Ranked:
        packed = _Packed.pack(items, keep_breakdown=keep_breakdown)
        now = time.monotonic()
        with self._lock:
            got = self._data.get(key)
            if got is not None and now - got[0] <= self._ttl:
                self._data.move_to_end(key)
                return got[1].unpack()
            self._data[key] = (now, packed)
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)
        return items


@dataclass(frozen=True, slots=True)
class _Packed:
    head: Ranked
    """The list's context, strategy, versions and assignment (no items)."""
    ids: tuple[str, ...]
    scores: array[float]
    reasons: tuple[tuple[Reason, ...], ...]
    breakdowns: tuple[dict[str, float], ...] | None

    @classmethod
    def pack(cls, r: Ranked, *, keep_breakdown: bool) -> _Packed:
        return cls(
            replace(r, items=[]),
            tuple(it.item_id for it in r.items),
            array("d", (it.score for it in r.items)),
            tuple(it.reasons for it in r.items),
            tuple(dict(it.breakdown) for it in r.items) if keep_breakdown else None,
        )

    def unpack(self) -> Ranked:
        bds = self.breakdowns or (_EMPTY,) * len(self.ids)
        items = [ScoredItem(i, s, rs, bd) for i, s, rs, bd in
                 zip(self.ids, self.scores, self.reasons, bds, strict=True)]
        return replace(self.head, items=items)


# --------------------------------------------------------------------------- serialization


def encode_ranked(r: Ranked, *, keep_breakdown: bool = False) -> bytes:
    """A ranked list as compact bytes (see the module docstring): the item count (4 bytes),
    the scores as little-endian doubles (exact, and 30× cheaper than JSON floats), then JSON."""
    table: dict[Reason, int] = {}  # distinct reasons, by value
    by_id: dict[int, int] = {}  # reasons are mostly shared objects: hash each one once
    sets: dict[tuple[int, ...], int] = {}  # distinct reason sets, as table indices
    per_item: list[int] = []
    for it in r.items:
        refs = []
        for x in it.reasons:
            j = by_id.get(id(x))
            if j is None:
                j = by_id[id(x)] = table.setdefault(x, len(table))
            refs.append(j)
        per_item.append(sets.setdefault(tuple(refs), len(sets)))
    head: dict[str, object] = {
        "v": _FORMAT,
        "strategy": r.strategy,
        "model_versions": dict(r.model_versions),
        "ctx": _fields_to_json(r.ctx),
        "assignment": _fields_to_json(r.assignment) if r.assignment is not None else None,
        "ids": [it.item_id for it in r.items],
        "reason_table": [_fields_to_json(x) for x in table],
        "reason_sets": list(sets),
        "reasons": per_item,
    }
    if keep_breakdown:
        head["breakdowns"] = [dict(it.breakdown) for it in r.items]
    scores = array("d", [it.score for it in r.items])
    if sys.byteorder != "little":
        scores.byteswap()
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return len(scores).to_bytes(4, "little") + scores.tobytes() + text.encode()


def decode_ranked(body: bytes) -> Ranked:
    """The list :func:`encode_ranked` wrote. Raises ``ValueError`` for another format."""
    n = int.from_bytes(body[:4], "little")
    scores = array("d")
    scores.frombytes(body[4 : 4 + 8 * n])
    if sys.byteorder != "little":
        scores.byteswap()
    head = json.loads(body[4 + 8 * n :])
    if head.get("v") != _FORMAT:
        raise ValueError(f"feed cache body format {head.get('v')!r}, expected {_FORMAT}")
    table = [_fields_from_json(Reason, x) for x in head["reason_table"]]
    sets = [tuple(table[k] for k in refs) for refs in head["reason_sets"]]
    ids: list[str] = head["ids"]
    if len(ids) != n:
        raise ValueError(f"feed cache body holds {len(ids)} ids and {n} scores")
    bds = head.get("breakdowns")
    if bds is None:
        items = [ScoredItem(i, s, sets[k], _EMPTY)
                 for i, s, k in zip(ids, scores, head["reasons"], strict=True)]
    else:
        items = [ScoredItem(i, s, sets[k], MappingProxyType(bd))
                 for i, s, k, bd in zip(ids, scores, head["reasons"], bds, strict=True)]
    a = head["assignment"]
    return Ranked(
        items=items,
        ctx=_fields_from_json(RankContext, head["ctx"]),
        strategy=head["strategy"],
        model_versions=MappingProxyType(head["model_versions"]),
        assignment=_fields_from_json(Assignment, a) if a is not None else None,
    )


def _fields_to_json(obj: object) -> dict[str, object]:
    """A flat frozen dataclass's fields as JSON values (mappings, tuples, datetimes); fields
    equal to their plain default are left out."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and v == f.default and type(v) is type(f.default):
            continue
        if isinstance(v, datetime):
            v = v.isoformat()
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, Mapping):
            v = dict(v)
        out[f.name] = v
    return out


@functools.cache
def _converters(cls: type) -> dict[str, Callable[[Any], object]]:
    """Field name → how to rebuild its value from JSON, read from the (string) annotations."""
    out: dict[str, Callable[[Any], object]] = {}
    for f in dataclasses.fields(cls):
        ann = str(f.type)
        if ann.startswith("datetime"):
            out[f.name] = datetime.fromisoformat
        elif ann.startswith("tuple"):
            out[f.name] = tuple
        elif ann.startswith("Mapping"):
            out[f.name] = MappingProxyType
    return out


def _fields_from_json(cls: type[_T], data: dict[str, Any]) -> _T:
    """Inverse of :func:`_fields_to_json`."""
    conv = _converters(cls)
    if conv:
        data = {k: (conv[k](v) if k in conv and v is not None else v) for k, v in data.items()}
    return cls(**data)


# --------------------------------------------------------------------------- SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feed (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_created ON feed(created);
"""
_UPSERT = (
    "INSERT INTO feed(key, created, body) VALUES (?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET created = excluded.created, body = excluded.body "
    "WHERE feed.created < ?"
)


class SqliteRankedListCache:
    """Ranked lists in one SQLite file that every worker process of the machine shares.

    Rows are ordered by creation time: the size bound drops the oldest (a feed is paged
    through soon after page 1, so first-in-first-out is as good as LRU here and reads stay
    read-only). Any SQLite error makes a read a miss and a write a no-op, logged at most once
    a minute: a lock held longer than ``busy_ms`` costs only that call; any other error (a
    corrupt file, a full disk) drops the connection, reopened after ``retry_seconds``.
    ``clock`` (wall time, shared by the processes) is there for tests."""

    def __init__(
        self,
        path: Path,
        max_size: int,
        ttl_seconds: float,
        *,
        prune_every: int = 64,
        busy_ms: int = 200,
        retry_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._max = max_size
        self._ttl = ttl_seconds
        self._prune_every = max(1, prune_every)
        self._busy_ms = busy_ms
        self._retry = retry_seconds
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._failed_at = float("-inf")
        self._last_log = float("-inf")
        self._writes = 0
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- API
    def get(self, key: str) -> Ranked | None:
        with self._lock:
            db = self._connection()
            if db is None:
                return None
            try:
                row = db.execute(
                    "SELECT body FROM feed WHERE key = ? AND created >= ?",
                    (key, self._clock() - self._ttl),
                ).fetchone()
            except sqlite3.Error as exc:
                self._failed(exc, "read")
                return None
        if row is None:
            return None
        try:
            return decode_ranked(row[0])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self._warn(f"feed cache {self.path}: unreadable list under {key!r} ({exc}); "
                       f"ranking again")
            return None

    def put(self, key: str, items: Ranked, *, keep_breakdown: bool = False) -> Ranked:
        try:
            body = encode_ranked(items, keep_breakdown=keep_breakdown)
        except (TypeError, ValueError) as exc:  # a field JSON cannot hold: serve, do not keep
            self._warn(f"feed cache: list under {key!r} not stored ({exc})")
            return items
        now = self._clock()
        with self._lock:
            db = self._connection()
            if db is None:
                return items
            try:
                with db:
                    stored = db.execute(_UPSERT, (key, now, body, now - self._ttl)).rowcount
                    other = None
                    if stored == 0:  # another worker stored this key first: serve its list
                        other = db.execute("SELECT body FROM feed WHERE key = ?", (key,)).fetchone()
                self._writes += 1
                if self._writes % self._prune_every == 0:
                    self._prune(db, now)
            except sqlite3.Error as exc:
                self._failed(exc, "write")
                return items
        if other is None:
            return items
        try:
            return decode_ranked(other[0])
        except (ValueError, KeyError, TypeError, IndexError):
            return items

    def forget_user(self, user_id: str) -> int:
        """Unlike a read or a write, an error here is raised: an erasure must not pass for done."""
        with self._lock:
            db = self._connection()
            if db is None:
                raise sqlite3.OperationalError(f"feed cache {self.path} cannot be opened")
            with db:
                gone = [k for (k,) in db.execute("SELECT key FROM feed") if user_of_key(k, user_id)]
                db.executemany("DELETE FROM feed WHERE key = ?", [(k,) for k in gone])
        return len(gone)

    def __len__(self) -> int:
        """Rows stored, live or not yet pruned (0 when the file cannot be read)."""
        with self._lock:
            db = self._connection()
            if db is None:
                return 0
            try:
                return int(db.execute("SELECT count(*) FROM feed").fetchone()[0])
            except sqlite3.Error as exc:
                self._failed(exc, "count")
                return 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # ----------------------------------------------------------------- internals
    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        with db:
            db.execute("DELETE FROM feed WHERE created < ?", (now - self._ttl,))
            db.execute(
                "DELETE FROM feed WHERE created <= ("
                "SELECT created FROM feed ORDER BY created DESC LIMIT 1 OFFSET ?)",
                (self._max,),
            )

    def _connection(self) -> sqlite3.Connection | None:
        if self._db is not None:
            if self._pid == os.getpid():
                return self._db
            self._db = None  # a forked child never uses its parent's connection
        if time.monotonic() - self._failed_at < self._retry:
            return None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=self._busy_ms / 1000)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc, "open")
            return None
        self._db, self._pid = db, os.getpid()
        return db

    def _failed(self, exc: Exception, what: str) -> None:
        """Say how to fix it; unless the file was only busy, drop the connection (reopened
        after ``retry_seconds``)."""
        busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
        if busy:
            self._warn(f"feed cache {self.path} is locked by another process ({what}); "
                       f"this feed is ranked again")
            return
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self._db = None
        self._failed_at = time.monotonic()
        self._warn(
            f"feed cache {self.path} failed to {what} ({exc}); feeds are ranked again for every "
            f"page until it works (if the file is corrupt, stop the API and delete "
            f"{self.path.name}* — it holds only cached feeds)"
        )

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= 60.0:
            self._last_log = now
            log.warning(message)
