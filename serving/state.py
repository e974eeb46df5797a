"""Everything a request needs, built once per app and held on ``app.state.services``.

:meth:`Services.build` reads the catalog, users, event log, model registry and search index
named by the settings. Tests may build a :class:`Services` themselves and pass it to
``create_app``.

Plugging in (for the rules / experiments engineers): set ``services.rules`` (a
``ranking.hooks.RulesHook``) and ``services.experiments`` (a ``ranking.hooks.ExperimentHook``) in
:meth:`Services.build` — one line each, marked below — and keep any store the routes need in
``services.extras`` (e.g. ``extras["rule_store"]``). The pipeline reads both attributes on every
request, so they can also be replaced at run time.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from core.errors import StorageUnavailableError
from core.settings import Settings
from data.catalog import Catalog
from data.journals import CatalogJournal, UserJournal
from data.models import Event, Item, User
from data.served_log import ServedLog
from ranking.hooks import ExperimentHook, NoExperiments, NoRules, RulesHook
from ranking.learned import LearnedStage
from ranking.live import LiveCounts
from ranking.modelset import ModelSet, current_versions, load_model_set
from ranking.pipeline import Pipeline, PipelineConfig
from ranking.profile import ProfileStore
from ranking.store_profiles import StoreLive, StoreProfiles
from serving.catalog_saver import CatalogSaver, journal_start
from serving.feed_cache import RankedListStore, open_feed_cache
from serving.follow import EventFollower, JournalTail
from serving.index_retry import IndexRetryQueue
from serving.shared import (
    CatalogFollower,
    StoreEvents,
    StoreRankedLists,
    StoreUsers,
    load_catalog,
    open_shared_stores,
    seed_from_files,
    shared_enabled,
    watch_changes,
)
from stores.factory import Stores
from stores.watch import ChangeWatcher

if TYPE_CHECKING:
    from search.backend import SearchBackend

log = logging.getLogger(__name__)

ERASURE_WINDOW = timedelta(seconds=60)
"""Around an erasure another worker took, the requests this worker served are searched for
the user (a request log buffer is written within a second; a minute leaves room for a retry)."""


class EventSink(Protocol):
    """The durable event log as serving uses it (``data.eventlog.EventLog``)."""

    def append(self, events: Sequence[Event]) -> object: ...

    def erase_user(self, user_id: str) -> object: ...


def open_event_log(settings: Settings) -> EventSink:
    from data.eventlog import EventLog

    return EventLog(settings.events_dir)


class SeenIds:
    """A bounded set of recently accepted event ids: spares the event log's index (the
    authority on duplicates) the look-up for a retry of a recent batch. At about 170 bytes an
    id, 20k ids hold 3.4 MB per worker and are full within minutes of steady traffic, so
    memory stops growing early; a retry older than that is still found by the index."""

    def __init__(self, max_size: int = 20_000) -> None:
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
    catalog: Catalog
    profiles: ProfileStore
    events: EventSink
    users: UserJournal
    search: SearchBackend | None = None
    models: ModelSet = field(default_factory=ModelSet)
    rules: RulesHook = field(default_factory=NoRules)
    experiments: ExperimentHook = field(default_factory=NoExperiments)
    live: LiveCounts = field(default_factory=LiveCounts)
    seen_events: SeenIds = field(default_factory=SeenIds)
    feed_cache: RankedListStore = field(init=False)
    """Ranked feeds by request id, shared by the workers (``serving.feed_cache``)."""
    extras: dict[str, object] = field(default_factory=dict)
    follower: EventFollower | None = None
    """Brings in the events other workers wrote (``serving.follow``); None: events reach this
    worker's profiles only through its own ``POST /v1/events``."""
    catalog_journal: CatalogJournal | None = None
    """Catalog changes made over the API: durable, and followed by the other workers."""
    catalog_saver: CatalogSaver | None = None
    """Writes ``items.jsonl`` behind the journal (``serving.catalog_saver``)."""
    tails: dict[str, JournalTail] = field(default_factory=dict)
    """``users`` / ``catalog``: what other workers appended to those journals."""
    index_retry: IndexRetryQueue | None = None
    """Catalog changes the search index did not take yet (``serving.index_retry``)."""
    stores: Stores | None = None
    """The stores (``serving.shared``) when the settings name shared ones: then profiles,
    live counts, users, events, feed pages, rules, experiments and the request log are the
    stores', and no journal or follower is used."""
    watcher: ChangeWatcher | None = None
    catalog_follower: CatalogFollower | None = None
    pipeline: Pipeline = field(init=False)
    _models_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _catalog_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.feed_cache = (
            StoreRankedLists(self.stores.feed_pages) if self.stores is not None
            else open_feed_cache(self.settings)
        )
        self.pipeline = Pipeline(
            catalog=self.catalog,
            profiles=self.profiles,
            live=self.live,
            config=PipelineConfig.from_settings(self.settings),
            models=lambda: self.models,
            rules=lambda: self.rules,
            experiments=lambda: self.experiments,
        )

    def record_events(self, events: Sequence[Event]) -> None:
        """Events just written by this worker: into the profiles and live counts (through the
        follower when there is one, which also brings in other workers' events, in log order)."""
        if self.follower is not None:
            self.follower.sync()
        elif self.stores is not None:
            try:  # the events are durable already: a hot store that fails only loses freshness
                self._apply_events(list(events))
            except StorageUnavailableError as exc:
                log.warning("shopper state not updated with %d events (%s)", len(events), exc)
        else:
            self._apply_events(list(events))

    def sync(self) -> None:
        """Before a request: apply what other workers wrote since (events, user changes,
        catalog changes; a few microseconds when nothing changed)."""
        if self.follower is not None:
            self.follower.sync()
        for tail in self.tails.values():
            tail.sync()

    def _apply_user_lines(self, lines: list[bytes]) -> None:
        for line in lines:
            try:
                rec = json.loads(line)
                if rec["op"] == "erase":
                    # the worker that took the erasure scanned the whole request log; what
                    # this one may have written since is what it served around that moment
                    # (it reads the journal before every request, and writes within a second)
                    user_id = str(rec["user_id"])
                    if not rec.get("at"):  # written before erasures had a time
                        self.profiles.erase(user_id)
                        continue
                    at = datetime.fromisoformat(rec["at"])
                    try:
                        around = (at - ERASURE_WINDOW, at + ERASURE_WINDOW)
                        self.forget_user(user_id, served_between=around)
                    except sqlite3.Error as exc:  # the profile is forgotten; the log can wait
                        log.warning("request log: the requests served to erased user %r around %s "
                                    "keep the user id (%s); `shoprank` reports still count them",
                                    user_id, at, exc)
                else:
                    self.profiles.upsert_users([User.model_validate(rec["user"])])
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("users journal: skipped a line another worker wrote (%s)", exc)

    def _apply_catalog_lines(self, lines: list[bytes]) -> None:
        upserts: list[Item] = []  # consecutive upserts are applied as one batch

        def flush() -> None:
            if upserts:
                self.catalog_upserted(upserts)
                upserts.clear()

        for line in lines:
            try:
                rec = json.loads(line)
                if rec["op"] == "delete":
                    flush()
                    self.catalog_deleted([str(rec["item_id"])])
                else:
                    upserts.append(Item.model_validate(rec["item"]))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("catalog journal: skipped a line another worker wrote (%s)", exc)
        flush()

    def forget_user(
        self, user_id: str, *, served_between: tuple[datetime, datetime] | None = None
    ) -> tuple[bool, int]:
        """This worker's part of an erasure (the worker that took it, and every other one
        when it reads the erasure in the users journal): the profile, and the requests served
        to the user, including those still in this worker's buffer of the request log.
        Returns (whether the user had a profile, how many served requests were anonymized)."""
        known = self.profiles.erase(user_id)
        learned = self.pipeline.learned
        if learned is not None and learned.served_log is not None:
            learned.served_log.forget_user(user_id)  # the ranker's lists stay, without the id
        merch = self.extras.get("merch")
        requests = getattr(merch, "requests", None)
        if requests is None:
            return known, 0
        return known, requests.forget_user(user_id, served_between=served_between)

    def catalog_upserted(self, items: list[Item]) -> None:
        """Items added or replaced: into this worker's catalog and what ranking derived from it
        (the API route also journals and indexes them: :meth:`catalog_written`)."""
        self.catalog.upsert(items)
        self.pipeline.catalog_changed([it.item_id for it in items])

    def catalog_deleted(self, item_ids: list[str]) -> None:
        """Items deleted: out of this worker's catalog, live counts and ranking's
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
        if shared_enabled(settings):
            return cls._build_shared(settings, with_search=with_search)
        catalog = _load_catalog(settings)
        from serving.bootstrap import load_profiles

        profiles = load_profiles(settings, catalog)
        search: SearchBackend | None = None
        if with_search:
            search = _open_search(settings)
        services = cls(
            settings=settings,
            catalog=catalog,
            profiles=profiles,
            events=open_event_log(settings),
            users=UserJournal(settings.state_dir / "users.jsonl"),
            search=search,
            models=load_model_set(settings.models_dir, derived_dir=settings.derived_dir),
        )
        from data.eventlog import EventLog

        if isinstance(services.events, EventLog):
            services.follower = EventFollower(services.events, services._apply_events)
        services.catalog_journal = CatalogJournal(settings.state_dir / "catalog.jsonl")
        journal = services.catalog_journal.path
        catalog_tail = JournalTail(journal, services._apply_catalog_lines,
                                   start=journal_start(settings.state_dir, journal))
        replayed = catalog_tail.sync()  # changes acknowledged since items.jsonl was last written
        services.tails = {
            "users": JournalTail(services.users.path, services._apply_user_lines),
            "catalog": catalog_tail,
        }
        services.catalog_saver = CatalogSaver(
            catalog, catalog_path(settings), catalog_tail, settings.state_dir,
            delay=settings.catalog_save_delay_seconds,
        )
        if replayed:  # the file is behind (a crash, or a worker that did not stop): catch it up
            services.catalog_saver.changed()
        if search is not None:
            services.index_retry = IndexRetryQueue(
                settings.state_dir, lambda: services.catalog, search
            )
        from serving.merch import install_merchandising

        install_merchandising(services)  # sets services.rules and services.experiments
        services.pipeline.learned = LearnedStage(  # the learned ranker + the served-list log
            settings.models_dir, catalog, ServedLog.in_state_dir(settings.state_dir),
            poll_seconds=settings.model_poll_seconds)
        log.info(
            "services ready: %d items, %d users, models %s, search %s",
            len(catalog), len(profiles), services.models.versions or "none",
            search.name if search is not None else "none",
        )
        return services

    @classmethod
    def _build_shared(cls, settings: Settings, *, with_search: bool) -> Services:
        """Services over the stores the settings name (``serving.shared``)."""
        from serving.merch import install_merchandising

        stores = open_shared_stores(settings)
        try:
            seed_from_files(settings, stores)
            catalog, cursor = load_catalog(stores)
            profiles = StoreProfiles(stores.users, stores.shopper, catalog,
                                     history_size=settings.history_size)
            services = cls(
                settings=settings,
                catalog=catalog,
                profiles=profiles,  # type: ignore[arg-type]
                events=StoreEvents(stores),
                users=StoreUsers(stores.users),  # type: ignore[arg-type]
                search=_open_search(settings) if with_search else None,
                models=load_model_set(settings.models_dir, derived_dir=settings.derived_dir),
                live=StoreLive(stores.shopper),  # type: ignore[arg-type]
                stores=stores,
            )
        except BaseException:
            stores.close()
            raise
        if services.search is not None:
            services.index_retry = IndexRetryQueue(
                settings.state_dir, lambda: services.catalog, services.search
            )
        m = install_merchandising(services)
        services.pipeline.learned = LearnedStage(
            settings.models_dir, catalog, ServedLog.in_state_dir(settings.state_dir),
            poll_seconds=settings.model_poll_seconds)
        services.catalog_follower = CatalogFollower(
            stores, cursor, services.catalog_upserted, services.catalog_deleted
        )
        services.watcher = watch_changes(
            stores, catalog=services.catalog_follower, users=profiles.invalidate,
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
        """Make an API change to the catalog durable: a line of the catalog journal (fsync'ed;
        the other workers follow it), ``items.jsonl`` written soon after by the saver.
        Services built without a journal write ``items.jsonl`` now; over shared stores the
        change goes to the catalog store (the other replicas follow its change feed)."""
        if self.stores is not None:
            if upserted:
                self.stores.catalog.upsert(list(upserted))
            if deleted:
                self.stores.catalog.delete(list(deleted))
            return
        if self.catalog_journal is None or self.catalog_saver is None:
            with self._catalog_lock:
                self.catalog.save(catalog_path(self.settings))
            return
        if upserted:
            self.catalog_journal.upsert(list(upserted))
        if deleted:
            self.catalog_journal.delete(list(deleted))
        self.catalog_saver.changed()

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        if self.index_retry is not None:
            self.index_retry.close()
        if self.catalog_saver is not None:
            self.catalog_saver.close()  # writes items.jsonl if a change is still unwritten
        if self.search is not None:
            try:
                self.search.close()
            except Exception:  # closing must never fail a shutdown
                log.exception("closing the search backend failed")
        close = getattr(self.events, "close", None)
        if close is not None:
            close()
        close_cache = getattr(self.feed_cache, "close", None)
        if close_cache is not None:
            close_cache()
        if self.pipeline.learned is not None:
            self.pipeline.learned.close()
        close_log = getattr(self.extras.get("search_log"), "close", None)
        if close_log is not None:
            close_log()  # writes the searches still buffered
        merch = self.extras.get("merch")
        close_requests = getattr(getattr(merch, "requests", None), "close", None)
        if self.stores is not None:
            if close_requests is not None:
                try:
                    close_requests()  # writes the served lists still buffered
                except Exception:  # closing must never fail a shutdown
                    log.exception("the request log could not write its last served lists")
            self.stores.close()


def _load_catalog(settings: Settings) -> Catalog:
    path = settings.data_dir / "items.jsonl"
    if not path.exists():
        log.warning("no catalog at %s yet; starting empty (upsert items over the API)", path)
        return Catalog()
    return Catalog.from_jsonl(path)


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


def catalog_path(settings: Settings) -> Path:
    return settings.data_dir / "items.jsonl"
