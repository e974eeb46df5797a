"""Serving over the stores (``stores.open_stores``), for replicas that share state.

Chosen when ``SHOPRANK_DATABASE_URL`` or ``SHOPRANK_REDIS_URL`` is set (see
:meth:`serving.state.Services.build`). What a request needs is read from the stores: users'
consent and attributes (a bounded cache), recent history, purchases and live counts (the
shopper store, every request), rules and experiments (cached by revision), feed pages, the
request log. Two things stay in each process because every request reads them: the catalog
(columnar, loaded from the catalog store and kept current from its change feed) and the
models (memory-mapped from the shared registry folder). A :class:`ChangeWatcher` applies
other replicas' catalog changes and invalidates the caches when users, rules or experiments
change.

At first start against empty stores, the shop files under ``data_dir`` (items, users, the
events file) are imported, so a node that generated a shop fills the shared stores for the
others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import StorageUnavailableError
from core.settings import Settings
from data.catalog import Catalog
from data.loaders import iter_events, iter_items, iter_users
from data.models import Event, Item, User
from ranking.pipeline import Ranked
from serving.bootstrap import events_file
from serving.feed_cache import decode_ranked, encode_ranked
from stores.factory import Stores, open_stores
from stores.protocols import FeedPageStore, UserStore
from stores.records import Change, StoreOptions
from stores.watch import ChangeWatcher

log = logging.getLogger(__name__)

BATCH = 5_000


def shared_enabled(settings: Settings) -> bool:
    return bool(settings.database_url or settings.redis_url)


def open_shared_stores(settings: Settings) -> Stores:
    """The stores the settings name (a bad URL or a server that does not answer is a
    ``StoreConfigError`` naming the setting)."""
    options = StoreOptions(feed_ttl_seconds=settings.feed_cache_ttl_seconds,
                           feed_max_entries=settings.feed_cache_size)
    return open_stores(settings.database_url, settings.redis_url, settings.home,
                       options=options, redis_prefix=settings.redis_prefix)


def check_stores(settings: Settings) -> None:
    """Open the configured shared stores once before any worker starts (migrating them, and
    importing the shop files into empty stores), so that a bad URL or a server that does not
    answer stops ``shoprank serve`` at once, and workers starting together do not all import."""
    if shared_enabled(settings):
        with open_shared_stores(settings) as stores:
            seed_from_files(settings, stores)


def seed_from_files(settings: Settings, stores: Stores) -> dict[str, int]:
    """Import the shop files under ``data_dir`` into empty stores (a first start); returns
    how many items, users and events were imported."""
    data = settings.data_dir
    done = {"items": 0, "users": 0, "events": 0}
    if stores.catalog.count() == 0 and (data / "items.jsonl").exists():
        done["items"] = _batched(iter_items(data / "items.jsonl"), stores.catalog.upsert)
        path = events_file(data)
        if path is not None:  # the history that came with the catalog: shopper state
            done["events"] = _batched(iter_events(path), stores.shopper.record)
    if stores.users.count() == 0 and (data / "users.jsonl").exists():
        done["users"] = _batched(iter_users(data / "users.jsonl"), stores.users.upsert)
    if any(done.values()):
        log.info("imported the shop files of %s into the stores: %s", data, done)
    return done


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

    def iter_events(self, since: object = None, until: object = None) -> object:
        return self.store.iter_events(since=since, until=until)  # type: ignore[arg-type]

    def read_table(self, since: object = None, until: object = None) -> object:
        return self.store.read_table(since=since, until=until)  # type: ignore[arg-type]

    def close(self) -> None:
        """The stores close the event store."""


def _user_of(key: str) -> str | None:
    parts = key.split("|")
    return parts[1] if len(parts) > 2 and parts[1] else None


class StoreRankedLists:
    """Ranked feeds between pages (``serving.feed_cache.RankedListStore``) in a
    ``FeedPageStore``: every replica serves page 2 from the list page 1 was cut from."""

    def __init__(self, pages: FeedPageStore) -> None:
        self.pages = pages

    def get(self, key: str) -> Ranked | None:
        try:
            body = self.pages.get(key)
        except StorageUnavailableError as exc:  # ranked afresh: a later page may overlap
            log.warning("feed page store unavailable (%s)", exc)
            return None
        if body is None:
            return None
        try:
            return decode_ranked(body)
        except ValueError:
            return None

    def put(self, key: str, items: Ranked, *, keep_breakdown: bool = False) -> Ranked:
        body = encode_ranked(items, keep_breakdown=keep_breakdown)
        try:
            stored = self.pages.put(key, body, user_id=_user_of(key))
        except StorageUnavailableError as exc:
            log.warning("feed page store unavailable (%s): page 1 served unstored", exc)
            return items
        return items if stored == body else decode_ranked(stored)

    def forget_user(self, user_id: str) -> int:
        return self.pages.forget_user(user_id)

    def close(self) -> None:
        """The stores close the feed page store."""


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
