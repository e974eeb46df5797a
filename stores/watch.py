"""A thread that hands a process's local caches the changes other processes commit.

Serving keeps catalog, consent, rules and experiments in memory; a :class:`ChangeWatcher`
polls one subscription and calls ``on_change`` with each batch of changes. When the feed's
connection is lost it retries (every ``retry_seconds``) and, once back, delivers
``Change("*")``: changes made meanwhile were not heard, so the caller reloads everything.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection

from stores.errors import StoreError
from stores.protocols import ChangeFeed, Subscription
from stores.records import Change, Topic

log = logging.getLogger(__name__)


class ChangeWatcher:
    def __init__(
        self,
        feed: ChangeFeed,
        topics: Collection[Topic],
        on_change: Callable[[list[Change]], None],
        *,
        wait_seconds: float = 1.0,
        retry_seconds: float = 1.0,
    ) -> None:
        self._feed = feed
        self._topics = tuple(topics)
        self._on_change = on_change
        self._wait = wait_seconds
        self._retry = retry_seconds
        self._stop = threading.Event()
        self._sub: Subscription | None = feed.subscribe(self._topics)
        self._thread = threading.Thread(target=self._run, name="store-changes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._sub is None:
                    self._sub = self._feed.subscribe(self._topics)
                    changes = [Change("*")]
                else:
                    changes = self._sub.poll(timeout=self._wait)
            except StoreError as exc:
                log.warning("change feed unavailable (%s); retrying in %g s", exc, self._retry)
                if self._sub is not None:
                    self._sub.close()
                    self._sub = None
                self._stop.wait(self._retry)
                continue
            if changes and not self._stop.is_set():
                try:
                    self._on_change(changes)
                except Exception:  # a failing callback must not end the watching
                    log.exception("applying %d store changes failed", len(changes))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._wait + self._retry + 5)
        if self._sub is not None:
            self._sub.close()
