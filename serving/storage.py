"""Serving over the stores (``stores.open_stores``): what a request needs beyond the models.

The stores are chosen by URL in the settings: embedded by default (SQLite files and the
event log under ``SHOPRANK_HOME``, shared by the worker processes of one machine), or shared
(``SHOPRANK_DATABASE_URL`` for PostgreSQL, ``SHOPRANK_REDIS_URL`` for Redis) for replicas on
several machines. Either way a process holds nothing another process needs: users' consent
and attributes (a bounded cache), recent history, purchases and live counts (the shopper
store, every request), rules and experiments (cached by revision), feed pages and the request
log are read from the stores. Two things stay in each process because every request reads
them: the catalog (columnar, loaded from the catalog store and kept current from its change
feed) and the models (memory-mapped from the registry folder). A :class:`ChangeWatcher`
applies other processes' catalog changes and invalidates the caches when users, rules or
experiments change.

At first start against empty stores, the shop files under ``data_dir`` (items, users, the
events file) and the events already in the event log are imported, so a generated or loaded
shop is served at once (and a node that generated a shop fills the shared stores for the
others).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.settings import Settings
from data.catalog import Catalog
from data.erasure import events_file
from data.loaders import iter_items, iter_users, read_events_table
from data.models import Event, Item, User
from stores.factory import Stores, open_configured
from stores.protocols import UserStore
from stores.records import Change, ShopperPolicy
from stores.watch import ChangeWatcher

log = logging.getLogger(__name__)


BATCH = 5_000


def check_stores(settings: Settings) -> None:
    """Open the configured stores once before any worker starts (migrating them, and
    importing the shop files into empty stores), so that a bad URL or a server that does not
    answer stops ``shoprank serve`` at once, and workers starting together do not all import."""
    with open_configured(settings) as stores:
        seed_from_files(settings, stores)


def seed_from_files(settings: Settings, stores: Stores) -> dict[str, int]:
    """Import the shop files under ``data_dir`` into empty stores (a first start), and the
    event store's events into shopper state; returns how many items, users and events were
    imported. Later changes reach the stores through the API or ``shoprank load``."""
    data = settings.data_dir
    done = {"items": 0, "users": 0, "events": 0}
    erased = set(stores.users.erasures())  # erased before the first start: never imported

    def kept(rows: Iterable[User]) -> Iterator[User]:
        return (r for r in rows if r.user_id not in erased)


    first = stores.catalog.count() == 0 and (data / "items.jsonl").exists()
    if first:
        done["items"] = _batched(iter_items(data / "items.jsonl"), stores.catalog.upsert)
        # the history that came with the catalog (the shop's events file) and the events
        # stored before the first start (`shoprank load events`): shopper state
        tables = []
        path = events_file(data)
        if path is not None:
            tables.append(read_events_table(path, columns=_PAST_COLUMNS))
        tables.append(stores.events.read_table().select(list(_PAST_COLUMNS)))
        for batch in past_shopper_events(tables, erased, settings.bootstrap_history,
                                         ShopperPolicy().history_types):
            stores.shopper.record(batch, live=False)  # the trending model has what was
            done["events"] += len(batch)  # popular then
    if (first or stores.users.count() == 0) and (data / "users.jsonl").exists():

        def new_users(batch: list[User]) -> None:  # a user stored already keeps its record
            have = stores.users.get_many(u.user_id for u in batch)
            stores.users.upsert([u for u in batch if u.user_id not in have])

        done["users"] = _batched(kept(iter_users(data / "users.jsonl")), new_users)
    if any(done.values()):
        log.info("imported the shop files of %s into the stores: %s", data, done)
    return done


_PAST_COLUMNS = ("user_id", "item_id", "type", "timestamp")


class _Past(NamedTuple):
    """A past event as shopper state reads it (``record(..., live=False)`` reads these four
    fields): built without validation, the rows come from checked tables."""

    user_id: str
    item_id: str
    type: str
    timestamp: datetime


def past_shopper_events(
    tables: Sequence[pa.Table],
    erased: Collection[str],
    n: int,
    history_types: Collection[str],
    *,
    batch_size: int = BATCH,
) -> Iterator[list[Event]]:
    """The past events that matter for shopper state, in batches, user by user and each
    user's oldest first: each user's last ``n`` history events, every purchase (also older
    ones: still bought) and refund, without the users ``erased``. Columnar: a first start
    over 20M events selects them in seconds, without validating row by row."""
    t = pa.concat_tables([x.select(list(_PAST_COLUMNS)) for x in tables if x.num_rows],
                         promote_options="permissive") if any(x.num_rows for x in tables) else None
    if t is None:
        return
    keep = pc.invert(pc.is_null(t["item_id"]))
    if erased:
        keep = pc.and_(keep, pc.invert(pc.is_in(t["user_id"], pa.array(list(erased)))))
    t = t.filter(keep)
    # by user, then time (stable: file order breaks ties): a user's rows arrive together,
    # so a batch touches few users' histories (what shopper state writes cost most)
    t = t.take(pc.sort_indices(t, [("user_id", "ascending"), ("timestamp", "ascending")]))
    users = t["user_id"].combine_chunks().dictionary_encode()
    codes = users.indices.to_numpy(zero_copy_only=False)
    kinds = t["type"]
    hist = pc.is_in(kinds, pa.array(sorted(history_types))).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(hist)
    hc = codes[rows]
    counts = np.bincount(hc, minlength=len(users.dictionary))
    order = np.argsort(hc, kind="stable")  # each user's history rows, in time order
    first = np.searchsorted(hc[order], hc[order], side="left")
    rank = np.empty(len(rows), np.int64)
    rank[order] = np.arange(len(rows)) - first  # 0 = the user's oldest history event
    wanted = np.zeros(t.num_rows, bool)
    wanted[rows[rank >= counts[hc] - n]] = True
    wanted |= pc.is_in(kinds, pa.array(["purchase", "refund"])).to_numpy(zero_copy_only=False)
    t = t.filter(pa.array(wanted))
    for rb in t.to_batches(max_chunksize=batch_size):
        cols = [rb.column(c).to_pylist() for c in _PAST_COLUMNS]
        yield cast(list[Event], [_Past(*r) for r in zip(*cols, strict=True)])


def _batched(rows: object, write: Callable[[list], object]) -> int:  # type: ignore[type-arg]
    batch: list[object] = []
    n = 0
    for row in rows:  # type: ignore[attr-defined]
        batch.append(row)
        if len(batch) >= BATCH:
            write(batch)
            n += len(batch)
            batch = []
    if batch:
        write(batch)
        n += len(batch)
    return n


def load_catalog(stores: Stores) -> tuple[Catalog, int]:
    """The catalog store's items as a columnar catalog, and the cursor they are as of."""
    cursor = stores.catalog.cursor()
    return Catalog(stores.catalog.iter_items()), cursor


class StoreUsers:
    """What serving writes about users (``Services.users``), over a ``UserStore``."""

    path: Path | None = None

    def __init__(self, users: UserStore) -> None:
        self.store = users

    def upsert(self, users: Sequence[User]) -> None:
        self.store.upsert(list(users))

    def erase(self, user_id: str) -> bool:
        return self.store.erase(user_id)


class StoreEvents:
    """The event store as serving's ``EventSink`` (append, erase, read back)."""

    def __init__(self, stores: Stores) -> None:
        self.store = stores.events

    def append(self, events: Sequence[Event]) -> object:
        return self.store.append(list(events))

    def erase_user(self, user_id: str) -> int:
        return self.store.erase_user(user_id)

    def iter_events(self, since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Event]:
        return self.store.iter_events(since=since, until=until)

    def read_table(self, since: datetime | None = None, until: datetime | None = None) -> pa.Table:
        return self.store.read_table(since=since, until=until)

    def recent(self, limit: int) -> list[Event]:
        """About the last ``limit`` events (rule previews sample recent traffic), read from
        the end of the store: what it reads does not grow with the log."""
        return self.store.recent(limit)

    def close(self) -> None:
        """The stores close the event store."""


class CatalogFollower:
    """Keeps a process's catalog current from the catalog store's change feed."""

    def __init__(
        self,
        stores: Stores,
        cursor: int,
        upserted: Callable[[list[Item]], None],
        deleted: Callable[[list[str]], None],
    ) -> None:
        self.stores = stores
        self.cursor = cursor
        self._upserted = upserted
        self._deleted = deleted

    def catch_up(self) -> int:
        """Apply every change after the cursor; returns how many items changed."""
        n = 0
        while True:
            page = self.stores.catalog.changes_since(self.cursor)
            if not page.changes:
                return n
            ups = [c.item for c in page.changes if c.item is not None]
            dels = [c.item_id for c in page.changes if c.item is None]
            if ups:
                self._upserted(ups)
            if dels:
                self._deleted(dels)
            n += len(page.changes)
            self.cursor = page.cursor


def watch_changes(
    stores: Stores,
    *,
    catalog: CatalogFollower,
    users: Callable[[tuple[str, ...] | None], None],
    rules: Callable[[], None],
    experiments: Callable[[], None],
) -> ChangeWatcher:
    """A thread applying other processes' changes: catalog changes into the local catalog,
    and cache invalidation for users, rules and experiments."""

    def on_change(changes: list[Change]) -> None:
        topics = {c.topic for c in changes}
        everything = "*" in topics
        if everything or "catalog" in topics:
            catalog.catch_up()
        if everything or "users" in topics:
            keys: set[str] | None = set()
            for c in changes:
                if c.topic in ("users", "*"):
                    if c.keys is None or keys is None:
                        keys = None
                    else:
                        keys.update(c.keys)
            users(tuple(keys) if keys is not None else None)
        if everything or "rules" in topics:
            rules()
        if everything or "experiments" in topics:
            experiments()

    return ChangeWatcher(stores.changes, ("users", "catalog", "rules", "experiments"),
                         on_change, wait_seconds=0.5)
