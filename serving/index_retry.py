"""Catalog changes the search index has not taken yet, retried until it has them.

A catalog change is durable once journaled; the index is a copy that may be unreachable
(OpenSearch down or frozen). Rather than answer 503 for a change that was already applied to
the catalog — which left search stale until the item was upserted again — the item ids wait
here: in memory and in ``state/index_pending.txt`` (one id a line, appended and fsync'ed), so
a restart retries them too. A background thread retries every ``interval`` seconds with the
catalog's current state of each id (an upsert, or a delete when the item is gone) and clears
the file once the index has them all. The API answers ``indexed: false, index_pending: N``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from core.fsutil import atomic_write
from data.catalog import Catalog
from search.backend import SearchBackend
from search.errors import SearchError

log = logging.getLogger(__name__)

PENDING_FILE = "index_pending.txt"


class IndexRetryQueue:
    def __init__(
        self,
        state_dir: Path,
        catalog: Callable[[], Catalog],
        search: SearchBackend,
        *,
        interval: float = 2.0,
    ) -> None:
        self.path = state_dir / PENDING_FILE
        self._catalog = catalog
        self._search = search
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        if self.path.exists():
            self._pending = {x for x in self.path.read_text("utf-8").split("\n") if x}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._pending:
            self._start()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, item_ids: Iterable[str]) -> int:
        """Remember ids whose change did not reach the index; returns how many wait now."""
        ids = [i for i in item_ids if i not in self._pending]
        with self._lock:
            if ids:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                try:
                    os.write(fd, "".join(i + "\n" for i in ids).encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._pending.update(ids)
            n = len(self._pending)
        self._start()
        return n

    def retry(self) -> bool:
        """One pass: send every pending id's current state to the index; True when none wait."""
        with self._lock:
            ids = sorted(self._pending)
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
        with self._lock:
            self._pending.difference_update(ids)
            rest = sorted(self._pending)
            atomic_write(self.path, (i.encode("utf-8") + b"\n" for i in rest))
        log.info("search index caught up with %d catalog change(s)", len(ids))
        return not rest

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="index-retry", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            if self.retry():
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
