"""Per-item facts online ranking reads on every request, one lookup each.

Filtering and diversity ask, for hundreds of candidates per request, "active and in stock?",
"which category group?" and "under this category?". The catalog keeps these facts in light
per-row columns maintained on every upsert and delete (no item is decoded to answer), so
:class:`CatalogIndex` is a thin facade whose methods are the catalog's own; ``rebuild`` and
``refresh`` have nothing left to do and stay for callers that announce changes.
"""

from __future__ import annotations

from collections.abc import Iterable

from data.catalog import Catalog


class CatalogIndex:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        # bound once: the hot loops call these hundreds of times per request
        self.recommendable = catalog.is_recommendable
        self.group = catalog.category_group
        self.in_category = catalog.in_category
        self.keep = catalog.keep
        self.head = catalog.head

    def rebuild(self) -> None:
        """Nothing to do: the catalog maintains the facts itself."""

    def refresh(self, item_ids: Iterable[str]) -> None:
        """Nothing to do: upserts and deletes update the catalog's facts as they happen."""
