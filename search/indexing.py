"""Catalog files → a search backend (the library behind ``shoprank index``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from data.loaders import Reject, iter_items, read_events_table
from data.models import Item
from search.backend import Progress, SearchBackend
from search.behaviour import EVENT_COLUMNS as BEHAVIOUR_COLUMNS
from search.engine import SearchEngine

log = logging.getLogger(__name__)

POPULARITY_WEIGHTS: dict[str, float] = {
    "view": 1.0, "click": 1.0, "favorite": 2.0, "add_to_cart": 3.0, "purchase": 5.0,
}
"""Event type → weight of one event in an item's popularity (what ``sort=popularity`` uses)."""


@dataclass(frozen=True)
class IndexSummary:
    indexed: int
    rejected: int
    seconds: float
    backend: str
    with_popularity: int


def popularity_from_events(path: Path | str) -> dict[str, float]:
    """Weighted event counts per item (`POPULARITY_WEIGHTS`) from an events file."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = read_events_table(path).select(["item_id", "type"])
    t = t.filter(pc.is_valid(t.column("item_id")))
    weights = pa.array(
        [POPULARITY_WEIGHTS.get(str(x), 0.0) for x in pc.unique(t.column("type")).to_pylist()]
    )
    types = pc.unique(t.column("type"))
    idx = pc.index_in(t.column("type"), value_set=types)
    w = pc.take(weights, idx)
    grouped = (
        pa.table({"item_id": t.column("item_id"), "w": w})
        .group_by("item_id")
        .aggregate([("w", "sum")])
    )
    return {
        k: float(v)
        for k, v in zip(
            grouped.column("item_id").to_pylist(), grouped.column("w_sum").to_pylist(), strict=True
        )
        if v
    }


def index_catalog(
    backend: SearchBackend,
    items_path: Path | str | None,
    *,
    items: Iterable[Item] | None = None,
    events_path: Path | str | None = None,
    rebuild: bool = True,
    progress: Progress | None = None,
) -> IndexSummary:
    """Index every valid item of ``items_path`` (or ``items``, e.g. the catalog store's).
    Bad rows are logged and skipped (counted in the summary). ``rebuild`` replaces the whole
    index atomically; otherwise items are upserted. ``events_path`` (optional) gives the
    popularity used by ``sort=popularity`` and, for a rebuild through the `SearchEngine`,
    the behaviour vectors (`search.behaviour`)."""
    t0 = time.perf_counter()
    rejects: list[Reject] = []

    def on_reject(r: Reject) -> None:
        rejects.append(r)
        if len(rejects) <= 5:
            log.warning("%s line %d skipped: %s", r.file, r.line, r.reason)

    popularity = popularity_from_events(events_path) if events_path else None
    if items is None:
        if items_path is None:
            raise ValueError("index_catalog: pass items_path or items")
        items = iter_items(items_path, on_reject=on_reject)
    if rebuild and events_path and isinstance(backend, SearchEngine):
        events = read_events_table(events_path, columns=BEHAVIOUR_COLUMNS)
        n = backend.rebuild(items, popularity=popularity, progress=progress, events=events)
    elif rebuild:
        n = backend.rebuild(items, popularity=popularity, progress=progress)
    else:
        n = backend.index_items(items, popularity=popularity, progress=progress)
    if len(rejects) > 5:
        log.warning("%d more bad rows skipped", len(rejects) - 5)
    return IndexSummary(
        indexed=n,
        rejected=len(rejects),
        seconds=time.perf_counter() - t0,
        backend=backend.name,
        with_popularity=len(popularity or {}),
    )
