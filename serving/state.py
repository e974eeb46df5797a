"""Everything a request needs, built once per app and held on ``app.state.services``.

:meth:`Services.build` opens the stores the settings name (``serving.storage``: embedded
SQLite under ``SHOPRANK_HOME`` by default, PostgreSQL and Redis when configured), the model
registry and the search index. The process keeps the catalog (columnar, followed through the
stores' change feed) and the models; everything else a request reads is in the stores, so
any worker on any machine can serve any request.

Merchandising plugs in through ``serving.merch.install_merchandising``: it sets
``services.rules`` (a ``ranking.hooks.RulesHook``), ``services.experiments`` (a
``ranking.hooks.ExperimentHook``), ``services.merch`` and ``services.search_log``. The
pipeline reads the hooks on every request, so they can also be replaced at run time.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.errors import StorageUnavailableError
from core.settings import Settings
from data.catalog import Catalog
from data.models import Event, Item
from ranking.hooks import ExperimentHook, NoExperiments, NoRules, RulesHook
from ranking.learned import LearnedStage
from ranking.modelset import ModelSet, current_versions, load_model_set
from ranking.pipeline import Pipeline, PipelineConfig
from ranking.store_profiles import StoreLive, StoreProfiles
from serving.feed_pages import StoreRankedLists
from serving.index_retry import IndexRetryQueue
from serving.storage import (
    CatalogFollower,
    StoreEvents,
    StoreUsers,
    load_catalog,
    seed_from_files,
    watch_changes,
)
from stores.factory import Stores, open_configured
from stores.served_lists import ServedLog
from stores.watch import ChangeWatcher

if TYPE_CHECKING:
    from analytics.search_log import SearchLog
    from search.backend import SearchBackend
    from serving.merch import Merch

log = logging.getLogger(__name__)

ERASURE_WINDOW = timedelta(seconds=60)
"""Around an erasure another process took, the requests this process served are searched for
the user (its request log buffer is written within a second; a minute leaves room)."""


class SeenIds:
    """A bounded set of recently accepted event ids: spares the event store's index (the
    authority on duplicates) the look-up for a retry of a recent batch. At about 170 bytes an
    id, 4,096 ids hold 0.7 MB per worker and are full within a minute of steady traffic, so
    memory stops growing early (a soak showed 20k still filling after 5 minutes); a retry
    older than that is still found by the store's index."""

    def __init__(self, max_size: int = 4_096) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._max = max_size
        self._lock = threading.Lock()

    def claim(self, ids: Sequence[str]) -> list[bool]:
        """For each id: True when new (and now remembered), False when already seen."""
        out: list[bool] = []
        with self._lock:
            for i in ids:
                if i in self._ids:
                    out.append(False)
                    continue
                self._ids[i] = None
                out.append(True)
            while len(self._ids) > self._max:
                self._ids.popitem(last=False)
        return out

    def release(self, ids: Sequence[str]) -> None:
        """Forget ids whose write failed, so a retry is accepted."""
        with self._lock:
            for i in ids:
                self._ids.pop(i, None)


@dataclass
class Services:
    settings: Settings
    stores: Stores
    catalog: Catalog
    profiles: StoreProfiles
    events: StoreEvents
    users: StoreUsers
    live: StoreLive
    search: SearchBackend | None = None
    models: ModelSet = field(default_factory=ModelSet)
    rules: RulesHook = field(default_factory=NoRules)
    experiments: ExperimentHook = field(default_factory=NoExperiments)
    seen_events: SeenIds = field(default_factory=SeenIds)
    feed_cache: StoreRankedLists = field(init=False)
    """Ranked feeds by request id in the feed page store (``serving.feed_pages``)."""
    merch: Merch | None = None
    """Rules, experiments and the request log (``serving.merch.install_merchandising``)."""
    search_log: SearchLog | None = None
    """Where storefront searches are logged, for search analytics."""
    preview_pipeline: Pipeline | None = None
    """The pipeline rule previews rank with (``serving.merch``; built on first use)."""
    index_retry: IndexRetryQueue | None = None
    """Catalog changes the search index did not take yet (``serving.index_retry``)."""
    watcher: ChangeWatcher | None = None
    catalog_follower: CatalogFollower | None = None
    pipeline: Pipeline = field(init=False)
    _models_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.feed_cache = StoreRankedLists(self.stores.feed_pages)
        self.pipeline = Pipeline(
            catalog=self.catalog,
            profiles=self.profiles,  # type: ignore[arg-type]
            live=self.live,  # type: ignore[arg-type]
            config=PipelineConfig.from_settings(self.settings),
            models=lambda: self.models,
            rules=lambda: self.rules,
            experiments=lambda: self.experiments,
        )

    def record_events(self, events: Sequence[Event]) -> None:
        """Events just stored: into the shopper state (recent history, purchases, live
        counts) that every process reads."""
        try:  # the events are durable already: a hot store that fails only loses freshness
            self._apply_events(list(events))
        except StorageUnavailableError as exc:
            log.warning("shopper state not updated with %d events (%s)", len(events), exc)

    def users_changed(self, user_ids: tuple[str, ...] | None) -> None:
        """Users changed in another process (the change feed): drop them from the profile
        cache; for an erasure, also the user id of the requests this process served around
        it, including those still in its buffer of the request log."""
        for user_id, at in self.profiles.invalidate(user_ids).items():
            try:
                self.forget_user(user_id, served_between=(at - ERASURE_WINDOW,
                                                          at + ERASURE_WINDOW))
            except StorageUnavailableError as exc:  # the profile is forgotten; the log waits
                log.warning("request log: the requests served to erased user %r around %s "
                            "keep the user id (%s); `shoprank` reports still count them",
                            user_id, at, exc)

    def forget_user(
        self, user_id: str, *, served_between: tuple[datetime, datetime] | None = None
    ) -> tuple[bool, int]:
        """The serving part of an erasure: the shopper state, and the requests served to the
        user, including those still in this process's buffer of the request log.
        Returns (whether the user had a profile, how many served requests were anonymized)."""
        known = self.profiles.erase(user_id)
        learned = self.pipeline.learned
        if learned is not None and learned.served_log is not None:
            learned.served_log.forget_user(user_id)  # the ranker's lists stay, without the id
        requests = self.merch.requests if self.merch is not None else None
        if requests is None:
            return known, 0
        return known, requests.forget_user(user_id, served_between=served_between)

    def catalog_upserted(self, items: list[Item]) -> None:
        """Items added or replaced: into this process's catalog and what ranking derived from
        it (the API route also stores and indexes them: :meth:`catalog_written`)."""
        self.catalog.upsert(items)
        self.pipeline.catalog_changed([it.item_id for it in items])

    def catalog_deleted(self, item_ids: list[str]) -> None:
        """Items deleted: out of this process's catalog, live counts and ranking's
        precomputations."""
        self.catalog.delete(item_ids)
        self.live.forget(item_ids)
        self.pipeline.catalog_changed(item_ids)

    def _apply_events(self, events: list[Event]) -> None:
        self.profiles.record(events, self.catalog)
        self.live.record(events)

    # ------------------------------------------------------------------ build
    @classmethod
    def build(cls, settings: Settings, *, with_search: bool = True) -> Services:
        """Open everything the settings name. Missing pieces (no catalog yet, no trained
        model, no index) leave the service running in a degraded but honest mode."""
        from serving.merch import install_merchandising

        stores = open_configured(settings)
        try:
            seed_from_files(settings, stores)
            catalog, cursor = load_catalog(stores)
            profiles = StoreProfiles(stores.users, stores.shopper, catalog,
                                     history_size=settings.history_size,
                                     cache_size=settings.user_cache_size)
            services = cls(
                settings=settings,
                stores=stores,
                catalog=catalog,
                profiles=profiles,
                events=StoreEvents(stores),
                users=StoreUsers(stores.users),
                live=StoreLive(stores.shopper),
                search=_open_search(settings) if with_search else None,
                models=load_model_set(settings.models_dir, derived_dir=settings.derived_dir),
            )
        except BaseException:
            stores.close()
            raise
        if services.search is not None:
            services.index_retry = IndexRetryQueue(
                stores.index_pending, lambda: services.catalog, services.search
            )
        m = install_merchandising(services)
        services.pipeline.learned = LearnedStage(
            settings.models_dir, catalog, ServedLog(stores.served),
            poll_seconds=settings.model_poll_seconds)
        services.catalog_follower = CatalogFollower(
            stores, cursor, services.catalog_upserted, services.catalog_deleted
        )
        services.watcher = watch_changes(
            stores, catalog=services.catalog_follower, users=services.users_changed,
            rules=m.rules.invalidate, experiments=m.experiments.invalidate,
        )
        services.catalog_follower.catch_up()  # changes made while the catalog was read
        log.info("services ready over %s / %s stores: %d items, models %s, search %s",
                 stores.durable, stores.hot, len(catalog), services.models.versions or "none",
                 services.search.name if services.search is not None else "none")
        return services

    # ------------------------------------------------------------------ models
    def reload_models(self, versions: dict[str, str] | None = None) -> bool:
        """Load the registry's current versions (or ``versions``) and swap them in.

        The new set is built fully before one reference is replaced, so requests in flight
        keep the set they started with. Returns whether anything changed."""
        with self._models_lock:
            wanted = (
                versions if versions is not None else current_versions(self.settings.models_dir)
            )
            if wanted == self.models.versions:
                return False
            new = load_model_set(self.settings.models_dir, wanted, previous=self.models,
                                 derived_dir=self.settings.derived_dir)
            changed = new.versions != self.models.versions
            self.models = new
            return changed

    def catalog_written(
        self, *, upserted: Sequence[Item] = (), deleted: Sequence[str] = ()
    ) -> None:
        """Make an API change to the catalog durable in the catalog store (the other
        processes follow its change feed)."""
        if upserted:
            self.stores.catalog.upsert(list(upserted))
        if deleted:
            self.stores.catalog.delete(list(deleted))

    def close(self) -> None:
        """Stop the threads and write what the buffers hold; a store that does not answer
        costs those rows (logged), never the shutdown."""
        merch = self.merch
        steps: list[tuple[str, Callable[[], object] | None]] = [
            ("the change watcher", self.watcher.close if self.watcher is not None else None),
            ("the index retry queue",
             self.index_retry.close if self.index_retry is not None else None),
            ("the search backend", self.search.close if self.search is not None else None),
            ("the served lists' buffer",  # the learned ranker's log
             self.pipeline.learned.close if self.pipeline.learned is not None else None),
            ("the search log's buffer",
             self.search_log.close if self.search_log is not None else None),
            ("the request log's buffer", merch.requests.close if merch is not None else None),
            ("the stores", self.stores.close),
        ]
        for what, close in steps:
            if close is None:
                continue
            try:
                close()
            except Exception:  # closing must never fail a shutdown
                log.exception("closing %s failed", what)


def _open_search(settings: Settings) -> SearchBackend | None:
    try:
        from search.factory import open_backend
    except ImportError:
        log.warning("search backend not available in this build; search routes answer 503")
        return None
    try:
        return open_backend(settings)
    except Exception as exc:  # the API still serves recommendations without search
        log.warning("search backend unavailable: %s", exc)
        return None


class ModelWatcher(threading.Thread):
    """Polls the registry's current pointers and swaps in newly promoted versions."""

    def __init__(
        self,
        services: Services,
        interval: float,
        on_change: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        super().__init__(name="model-watcher", daemon=True)
        self.services = services
        self.interval = interval
        self.on_change = on_change
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                if self.services.reload_models():
                    log.info("models now %s", self.services.models.versions)
                    if self.on_change is not None:
                        self.on_change(self.services.models.versions)
            except Exception:  # keep watching; the old models keep serving
                log.exception("model reload failed; keeping the current models")

    def stop(self) -> None:
        self._stop_event.set()

