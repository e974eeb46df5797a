"""Open every store from two URLs: ``open_stores(database_url, redis_url, home)``.

* ``database_url`` (``SHOPRANK_DATABASE_URL``) — durable state: events, users, catalog, rules,
  experiments, request log, the search log and the ranker's served lists, and the change feed.

  - empty / None: embedded, under ``home`` (events in ``home/events``, SQLite files in
    ``home/state``);
  - ``sqlite:///relative/folder`` or ``sqlite:////absolute/folder``: embedded, under that folder;
  - ``postgresql://user:password@host:port/db`` (or ``postgres://``; libpq parameters such as
    ``?options=-csearch_path%3Dshop1`` pass through): PostgreSQL.

* ``redis_url`` (``SHOPRANK_REDIS_URL``) — hot state: shopper state, live counts, feed pages.

  - empty / None: embedded SQLite files next to the durable ones (one machine only);
  - ``redis://host:port/db``, ``rediss://…`` or ``unix:///path``: Redis.

A bad URL, or a server that does not answer at start-up, is one :class:`StoreConfigError`
naming the setting. PostgreSQL migrations are applied here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from core.settings import Settings
from stores.errors import StoreConfigError
from stores.protocols import (
    CatalogStore,
    ChangeFeed,
    DocumentStore,
    EventStore,
    ExperimentStore,
    FeedPageStore,
    LogStore,
    RequestLogStore,
    RuleStore,
    ShopperStateStore,
    UserStore,
)
from stores.records import StoreOptions
from stores.sqlite.db import SqliteDb
from stores.sqlite.events import EmbeddedEvents
from stores.sqlite.hot import SqliteFeedPages, SqliteShopperState
from stores.sqlite.logs import SqliteLog, open_log_db
from stores.sqlite.requests import SqliteRequestLog
from stores.sqlite.state import (
    MIGRATIONS,
    SqliteCatalog,
    SqliteChangeFeed,
    SqliteDocuments,
    SqliteUsers,
)

log = logging.getLogger(__name__)

DATABASE_SETTING = "SHOPRANK_DATABASE_URL"
REDIS_SETTING = "SHOPRANK_REDIS_URL"


@dataclass
class Stores:
    """Every store of one process; :meth:`close` closes them all."""

    events: EventStore
    users: UserStore
    catalog: CatalogStore
    rules: RuleStore
    experiments: ExperimentStore
    requests: RequestLogStore
    shopper: ShopperStateStore
    feed_pages: FeedPageStore
    changes: ChangeFeed
    index_pending: DocumentStore
    """Item ids whose catalog change the search index did not take yet (``doc_id`` = item
    id): any process retries them (``serving.index_retry``)."""
    searches: LogStore
    """The search log (what each search answered), for search analytics."""
    served: LogStore
    """The learned ranker's served lists (each item with its score breakdown)."""
    durable: Literal["embedded", "postgresql"]
    hot: Literal["embedded", "redis"]
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # closing the rest matters more than one failure
                log.exception("closing a store failed")
        self._closers.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def embedded_root(database_url: str | None, home: Path) -> Path | None:
    """The folder of the embedded durable stores, or None for PostgreSQL (checks the URL)."""
    url = (database_url or "").strip()
    if not url:
        return home
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("postgresql", "postgres"):
        return None
    if scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else ""
        if not path:
            raise StoreConfigError(
                DATABASE_SETTING, f"{url!r} names no folder; write sqlite:///relative/folder "
                "or sqlite:////absolute/folder"
            )
        return Path(path)
    raise StoreConfigError(
        DATABASE_SETTING,
        f"unknown scheme {scheme or url!r}; use postgresql://user@host:port/db, "
        "sqlite:///folder, or leave it empty for the embedded stores under SHOPRANK_HOME",
    )


def _check_redis_url(redis_url: str | None) -> str | None:
    url = (redis_url or "").strip()
    if not url:
        return None
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise StoreConfigError(
            REDIS_SETTING,
            f"unknown scheme {scheme or url!r}; use redis://host:port/db, or leave it empty "
            "for the embedded hot state (one machine only)",
        )
    return url


def open_stores(
    database_url: str | None,
    redis_url: str | None,
    home: Path,
    *,
    options: StoreOptions | None = None,
    redis_prefix: str = "shoprank:",
) -> Stores:
    """Open (and migrate) every store; see the module docstring for the URLs."""
    opts = options or StoreOptions()
    root = embedded_root(database_url, home)
    rurl = _check_redis_url(redis_url)
    state_dir = (root or home) / "state"
    closers: list[Callable[[], None]] = []
    try:
        if root is not None:
            db = SqliteDb(state_dir / "stores.sqlite", MIGRATIONS, timeout=opts.timeout_seconds)
            closers.append(db.close)
            events: EventStore = EmbeddedEvents(root / "events")
            closers.append(events.close)
            requests: RequestLogStore = SqliteRequestLog(
                state_dir / "requests.sqlite", keep_days=opts.request_keep_days,
                timeout=opts.timeout_seconds,
            )
            closers.append(requests.close)
            users: UserStore = SqliteUsers(db)
            catalog: CatalogStore = SqliteCatalog(db)
            rules: RuleStore = SqliteDocuments(db, "rule", "rules")
            experiments: ExperimentStore = SqliteDocuments(db, "experiment", "experiments")
            changes: ChangeFeed = SqliteChangeFeed(db)
            index_pending: DocumentStore = SqliteDocuments(db, "index_pending", "index")
            logs = open_log_db(state_dir / "logs.sqlite", timeout=opts.timeout_seconds)
            closers.append(logs.close)
            searches: LogStore = SqliteLog(logs, "searches", keep_days=opts.search_keep_days)
            served: LogStore = SqliteLog(logs, "served", keep_days=opts.served_keep_days)
            durable: Literal["embedded", "postgresql"] = "embedded"
        else:
            # imported here: an embedded-only process never loads psycopg or redis
            from stores.postgres.db import PgDatabase
            from stores.postgres.events import PgEvents
            from stores.postgres.logs import PgLog
            from stores.postgres.requests import PgRequestLog
            from stores.postgres.schema import MIGRATIONS as PG_MIGRATIONS
            from stores.postgres.state import PgCatalog, PgChangeFeed, PgDocuments, PgUsers

            assert database_url is not None
            pg = PgDatabase(database_url, timeout=opts.timeout_seconds, pool_size=opts.pool_size)
            closers.append(pg.close)
            pg.migrate(PG_MIGRATIONS)
            events = PgEvents(pg)
            # served lists are telemetry: their own connections commit without the WAL flush
            pg_log = PgDatabase(database_url, timeout=opts.timeout_seconds, pool_size=2,
                                synchronous_commit=False)
            closers.append(pg_log.close)
            requests = PgRequestLog(pg_log, keep_days=opts.request_keep_days)
            searches = PgLog(pg_log, "searches", keep_days=opts.search_keep_days)
            served = PgLog(pg_log, "served", keep_days=opts.served_keep_days)
            users = PgUsers(pg)
            catalog = PgCatalog(pg)
            rules = PgDocuments(pg, "rule", "rules")
            experiments = PgDocuments(pg, "experiment", "experiments")
            changes = PgChangeFeed(pg)
            index_pending = PgDocuments(pg, "index_pending", "index")
            durable = "postgresql"
        if rurl is None:
            shopper: ShopperStateStore = SqliteShopperState(
                state_dir / "shopper.sqlite", opts.shopper, timeout=opts.timeout_seconds
            )
            closers.append(shopper.close)
            feed_pages: FeedPageStore = SqliteFeedPages(
                state_dir / "feed_pages.sqlite", ttl_seconds=opts.feed_ttl_seconds,
                max_entries=opts.feed_max_entries, timeout=opts.timeout_seconds,
            )
            closers.append(feed_pages.close)
            hot: Literal["embedded", "redis"] = "embedded"
            if durable == "postgresql":
                log.warning(
                    "shared durable stores with embedded hot state: shopper state and feed "
                    "pages stay on this machine (set %s for several replicas)", REDIS_SETTING
                )
        else:
            from stores.redis.hot import RedisFeedPages, RedisShopperState, connect

            client = connect(rurl, timeout=opts.timeout_seconds)
            closers.append(client.close)
            shopper = RedisShopperState(client, opts.shopper, prefix=redis_prefix)
            feed_pages = RedisFeedPages(client, ttl_seconds=opts.feed_ttl_seconds,
                                        prefix=redis_prefix)
            hot = "redis"
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    return Stores(events, users, catalog, rules, experiments, requests, shopper, feed_pages,
                  changes, index_pending, searches, served, durable, hot, closers)


def open_configured(settings: Settings) -> Stores:
    """The stores ``settings`` name (``database_url``, ``redis_url``, ``home``, the feed
    pages' bounds, the Redis prefix): what the API, the CLI and the simulator all open."""
    options = StoreOptions(feed_ttl_seconds=settings.feed_cache_ttl_seconds,
                           feed_max_entries=settings.feed_cache_size)
    return open_stores(settings.database_url, settings.redis_url, settings.home,
                       options=options, redis_prefix=settings.redis_prefix)
