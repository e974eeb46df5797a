"""Catalog changes the search index has not taken yet, retried until it has them.

A catalog change is durable once stored; the index is a copy that may be unreachable
(OpenSearch down or frozen). Rather than answer 503 for a change that was already applied to
the catalog — which left search stale until the item was upserted again — the item ids wait
in the index-pending store (``stores.index_pending``: SQLite under ``SHOPRANK_HOME`` or
PostgreSQL), so a restart, or another replica, retries them too. A background thread retries
every ``interval`` seconds with the catalog's current state of each id (an upsert, or a
delete when the item is gone) and removes the ids the index took. The thread runs while ids
wait: started by a change the index missed, and at start-up when the store holds some. The
API answers ``indexed: false, index_pending: N``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from core.threads import lower_this_threads_priority
from data.catalog import Catalog
from search.backend import SearchBackend
from search.errors import SearchError
from stores.errors import NotFoundError, StoreError
from stores.protocols import DocumentStore
from stores.records import Document

log = logging.getLogger(__name__)


class IndexRetryQueue:
    def __init__(
        self,
        store: DocumentStore,
        catalog: Callable[[], Catalog],
        search: SearchBackend,
        *,
        interval: float = 2.0,
    ) -> None:
        self.store = store
        self._catalog = catalog
        self._search = search
        self._interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.pending():
            self._start()

    def pending(self) -> list[str]:
        """The ids waiting for the index (every process's)."""
        return [d.doc_id for d in self.store.list()]

    def __len__(self) -> int:
        return len(self.pending())

    def add(self, item_ids: Iterable[str]) -> int:
        """Remember ids whose change did not reach the index; returns how many wait now."""
        for i in dict.fromkeys(item_ids):
            self.store.put(Document(i, "pending", ""))
        self._start()
        return len(self)

    def retry(self) -> bool:
        """One pass: send every pending id's current state to the index; True when none wait."""
        try:
            ids = sorted(self.pending())
        except StoreError as exc:
            log.info("index-pending store unavailable (%s); retrying later", exc)
            return False
        if not ids:
            return True
        catalog = self._catalog()
        items = [it for it in (catalog.get(i) for i in ids) if it is not None]
        gone = [i for i in ids if catalog.get(i) is None]
        try:
            if items:
                self._search.upsert(items)
            if gone:
                self._search.delete(gone)
        except SearchError as exc:
            log.info("search index still unreachable, %d change(s) wait: %s", len(ids), exc)
            return False
        try:
            for i in ids:
                try:
                    self.store.delete(i)
                except NotFoundError:  # another process took it meanwhile
                    pass
            rest = self.pending()
        except StoreError as exc:
            log.info("index-pending store unavailable (%s); retrying later", exc)
            return False
        log.info("search index caught up with %d catalog change(s)", len(ids))
        return not rest

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="index-retry", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        lower_this_threads_priority()  # index writes yield the cores to the requests
        while not self._stop.wait(self._interval):
            if self.retry():
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
