"""One interface per kind of shared state; the docstrings here are the contract.

Every method may raise :class:`~stores.errors.StoreUnavailableError` when its backend does not
answer within the store's time budget. Implementations: ``stores.sqlite`` (embedded: SQLite
in WAL mode and files under one folder) and ``stores.postgres`` / ``stores.redis`` (shared).
``tests/stores/`` runs one contract suite per interface on both.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from data.models import Event, Item, User
from stores.records import (
    SERVED_COLUMNS,
    AppendResult,
    CatalogChanges,
    Change,
    Document,
    LogRow,
    ServedList,
    ShopperProfile,
    Topic,
)

if TYPE_CHECKING:
    import pyarrow as pa


@runtime_checkable
class EventStore(Protocol):
    """Behaviour events: the durable source of truth for training."""

    def append(self, events: Sequence[Event]) -> AppendResult:
        """Store the events whose ``event_id`` is not stored yet; the rest (and repeats within
        the batch, after the first) are duplicates. Returns only once the accepted events are
        durable: a retry of a batch that was not acknowledged is always safe."""
        ...

    def contains(self, event_id: str) -> bool:
        """Whether an event with this id is stored."""
        ...

    def count(self) -> int:
        """How many events are stored."""
        ...

    def read_table(
        self, *, since: date | datetime | None = None, until: date | datetime | None = None
    ) -> pa.Table:
        """The events of UTC days ``since`` … ``until`` (inclusive; a datetime selects its
        day) as one Arrow table in ``data.event_table.EVENT_SCHEMA``, in time order (events
        of one instant: in arrival order embedded, by id in PostgreSQL)."""
        ...

    def iter_events(
        self, *, since: date | datetime | None = None, until: date | datetime | None = None
    ) -> Iterator[Event]:
        """The same events as :meth:`read_table`, one by one, in time order."""
        ...

    def recent(self, limit: int) -> list[Event]:
        """About the last ``limit`` events, oldest first, read without scanning the store
        (rule previews sample recent traffic)."""
        ...

    def erase_user(self, user_id: str) -> int:
        """Remove every event of the user (an erasure); returns how many. Their ids are
        forgotten too: the same event posted again would be stored again."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class UserStore(Protocol):
    """Users' attributes and consent, and the record of erasures."""

    def upsert(self, users: Sequence[User]) -> None:
        """Insert or replace users (attributes and consent as given)."""
        ...

    def get(self, user_id: str) -> User | None:
        """The user, or None when unknown or erased."""
        ...

    def get_many(self, user_ids: Iterable[str]) -> dict[str, User]:
        """The known users among ``user_ids``."""
        ...

    def iter_users(self) -> Iterator[User]:
        """Every stored user, by id."""
        ...

    def count(self) -> int: ...

    def erase(self, user_id: str) -> bool:
        """Delete the user and record the erasure with its time (kept even if the user comes
        back: models trained before it still hold the id). Returns whether the user existed."""
        ...

    def erasures(self, since: datetime | None = None) -> dict[str, datetime]:
        """Erased user ids → when (the latest erasure), optionally only those since a time."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class CatalogStore(Protocol):
    """Catalog items with a change feed: every upsert or delete gets a sequence number from
    one counter, and :meth:`changes_since` replays them in that order (monotonically
    increasing cursor, no gaps for readers: a change is visible once its number is)."""

    def upsert(self, items: Sequence[Item]) -> int:
        """Insert or replace items; returns the cursor after the change."""
        ...

    def delete(self, item_ids: Sequence[str]) -> int:
        """Delete items (unknown ids are ignored); returns the cursor after the change."""
        ...

    def get(self, item_id: str) -> Item | None: ...

    def get_many(self, item_ids: Iterable[str]) -> dict[str, Item]: ...

    def iter_items(self) -> Iterator[Item]:
        """Every live item, by id."""
        ...

    def count(self) -> int:
        """How many live items."""
        ...

    def cursor(self) -> int:
        """The number of the latest change (0 when none)."""
        ...

    def changes_since(self, cursor: int, limit: int = 1000) -> CatalogChanges:
        """Items changed after ``cursor``, oldest change first, at most ``limit``; each item
        appears once, as it is now (None when deleted). Ask again from the returned cursor
        until no changes come back."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class DocumentStore(Protocol):
    """JSON documents by id with a revision counter (the shape of rules and experiments)."""

    def list(self, group: str | None = None) -> list[Document]:
        """Documents ordered by id, optionally of one group."""
        ...

    def get(self, doc_id: str) -> Document:
        """The document, or :class:`~stores.errors.NotFoundError`."""
        ...

    def put(self, doc: Document, *, create: bool = False) -> None:
        """Insert or replace (keeping ``created_at``); with ``create=True`` an existing id
        is a :class:`~stores.errors.ConflictError`."""
        ...

    def delete(self, doc_id: str) -> None:
        """Delete, or :class:`~stores.errors.NotFoundError`."""
        ...

    def revision(self) -> int:
        """A number that grows whenever any document of this store changes."""
        ...

    def close(self) -> None: ...


class RuleStore(DocumentStore, Protocol):
    """Merchandising rules: ``group`` is the rule's ``rule_set``, ``body`` its RuleSpec JSON."""


class ExperimentStore(DocumentStore, Protocol):
    """Experiments: ``group`` is the status, ``body`` the ExperimentSpec JSON with times."""


@runtime_checkable
class RequestLogStore(Protocol):
    """Served lists, for attribution and rule previews: partitioned by UTC day, kept
    ``keep_days`` days (older day partitions are dropped whole by :meth:`prune`)."""

    keep_days: int

    def record(self, rows: Sequence[ServedList]) -> None:
        """Store served lists (a request id stored again replaces its row)."""
        ...

    def encode(self, row: ServedList) -> object:
        """``row`` made ready for :meth:`record_encoded`. A buffered writer calls it on the
        request's thread, so that its own thread does no per-row Python work: that work held
        the interpreter lock against the requests (docs/decisions.md, "Log rows encoded by
        the request")."""
        ...

    def record_encoded(self, rows: Sequence[object]) -> None:
        """:meth:`record` of rows :meth:`encode` made."""
        ...

    def lookup(self, request_ids: Iterable[str]) -> dict[str, ServedList]:
        """The stored lists of ``request_ids`` (unknown ids absent)."""
        ...

    def lookup_columns(
        self,
        request_ids: Sequence[str],
        *,
        experiment: str | None = None,
        columns: Sequence[str] = SERVED_COLUMNS,
    ) -> dict[str, list[str | None]]:
        """The rows :meth:`lookup` finds, column-wise (some of ``SERVED_COLUMNS``), only those
        of ``experiment`` when given — what reports read for millions of events."""
        ...

    def recent(self, surface: str | None = None, limit: int = 1000) -> list[ServedList]:
        """The latest served lists, newest first, optionally of one surface."""
        ...

    def forget_user(
        self, user_id: str, *, served_between: tuple[datetime, datetime] | None = None
    ) -> int:
        """Anonymize an erased user: their rows stay (a variant's impressions still count)
        without user id and query. Returns how many rows had the user."""
        ...

    def days(self) -> list[date]:
        """The UTC days that have a partition, oldest first."""
        ...

    def prune(self, now: datetime | None = None) -> int:
        """Drop the partitions of days older than ``keep_days`` before ``now``; returns how
        many days were dropped."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ShopperStateStore(Protocol):
    """Hot per-shopper state and live popularity, updated as events arrive (the
    ``ShopperPolicy`` of the store decides what an event does)."""

    def record(self, events: Sequence[Event], *, live: bool = True) -> None:
        """Apply events in order: history types push ``(item_id, type)`` onto the user's
        recent history (bounded to ``history_size``), a purchase adds the item to the user's
        purchases and a refund removes it, and weighted types add to the item's decayed live
        count (unless ``live`` is False: an import of past events, which the trending model
        covers). The caller leaves out events that must not count (no consent)."""
        ...

    def recent(self, user_id: str, limit: int | None = None) -> list[tuple[str, str]]:
        """The user's recent ``(item_id, event type)``, newest first."""
        ...

    def purchased(self, user_id: str) -> frozenset[str]:
        """Items the user bought and did not refund."""
        ...

    def profile(self, user_id: str, limit: int | None = None) -> ShopperProfile:
        """:meth:`recent` and :meth:`purchased` in one call (one round trip to a server):
        what a request reads."""
        ...

    def forget_user(self, user_id: str) -> None:
        """Drop the user's history and purchases (erasure or withdrawn consent)."""
        ...

    def live_top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` items with the highest decayed live count, the hottest scored 1.0."""
        ...

    def live_scores(self, item_ids: Sequence[str]) -> dict[str, float]:
        """Decayed live counts of ``item_ids`` relative to the hottest item (absent: none)."""
        ...

    def forget_items(self, item_ids: Iterable[str]) -> None:
        """Drop items' live counts (deleted from the catalog)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class FeedPageStore(Protocol):
    """Ranked feed lists (encoded by serving) kept under a key for later pages, with a TTL.

    Write-once until expiry: :meth:`put` keeps a live body already stored under the key and
    returns it, so two replicas ranking the same key at once still serve one list."""

    def get(self, key: str) -> bytes | None:
        """The body under ``key``, or None when absent or expired."""
        ...

    def put(self, key: str, body: bytes, *, user_id: str | None = None) -> bytes:
        """Store ``body`` unless a live one is stored under ``key``; return the one stored.
        ``user_id`` lets :meth:`forget_user` find it."""
        ...

    def forget_user(self, user_id: str) -> int:
        """Drop every body stored for ``user_id``; returns how many."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Subscription(Protocol):
    """Changes seen since the subscription started, for invalidating local caches."""

    def poll(self, timeout: float = 0.0) -> list[Change]:
        """Changes received so far (waiting up to ``timeout`` seconds for the first). After a
        lost connection the first change is ``Change("*")``: drop every cached value."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ChangeFeed(Protocol):
    """Notifications of committed changes to users, catalog, rules and experiments; stores
    publish them in the same transaction as the change (delivered only once committed)."""

    def subscribe(self, topics: Collection[Topic]) -> Subscription: ...

    def close(self) -> None: ...


@runtime_checkable
class LogStore(Protocol):
    """An append-only telemetry log keyed by request id (the search log, the learned
    ranker's served lists): written in batches by a buffer in each process, read in time
    order by reports and training, anonymized by erasures, pruned by age."""

    def record(self, rows: Sequence[LogRow]) -> None:
        """Store rows (a row with a request id already stored replaces it)."""
        ...

    def encode(self, row: LogRow) -> object:
        """``row`` made ready for :meth:`record_encoded` (as ``RequestLogStore.encode``)."""
        ...

    def record_encoded(self, rows: Sequence[object]) -> None:
        """:meth:`record` of rows :meth:`encode` made."""
        ...

    def read(self, since: datetime | None = None,
             until: datetime | None = None) -> Iterator[LogRow]:
        """Rows with ``since <= at < until``, oldest first (ties by request id)."""
        ...

    def count(self) -> int: ...

    def forget_user(self, user_id: str) -> int:
        """An erasure: the user's rows stay (for the counts), without the user id and the
        body's ``query``; returns how many rows changed."""
        ...

    def prune(self, now: datetime | None = None) -> int:
        """Drop rows older than the store's ``keep_days``; returns how many."""
        ...

    def close(self) -> None: ...
