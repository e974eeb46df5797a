"""Catalog changes over the API (``/v1/catalog``): stored first, applied to this process's
catalog, then indexed; an index that does not answer gets the change from the retry queue."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from data.catalog import Catalog
from data.models import Item
from search.backend import SearchBackend
from search.errors import BackendUnavailableError
from serving.index_retry import IndexRetryQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatalogWrites:
    catalog: Catalog
    store: Callable[[Sequence[Item], Sequence[str]], None]
    """Make the change durable (the catalog store; the other processes follow its feed)."""
    upserted: Callable[[list[Item]], None]
    """Apply upserts to this process's catalog and ranking's precomputations."""
    deleted: Callable[[list[str]], None]
    search: SearchBackend | None
    retry: IndexRetryQueue | None

    def apply(self, upserted: list[Item], deleted: list[str]) -> tuple[bool, int]:
        """Store the change (durable first: a failure there applies nothing), apply it to
        this process's catalog, then to the search index. Returns (indexed now, changes
        waiting for the index)."""
        self.store(upserted, deleted)
        if upserted:
            self.upserted(upserted)
        if deleted:
            self.deleted(deleted)
        if self.search is None:
            return False, 0
        ids = [it.item_id for it in upserted] + deleted
        try:
            if self.retry is not None and len(self.retry):
                raise BackendUnavailableError("earlier changes still wait for the index")
            if upserted:
                self.search.upsert(upserted)
            if deleted:
                self.search.delete(deleted)
        except BackendUnavailableError as exc:
            if self.retry is None:
                raise
            waiting = self.retry.add(ids)
            log.warning("search index unreachable; %d catalog change(s) queued: %s", waiting, exc)
            return False, waiting
        return True, 0
