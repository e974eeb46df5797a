"""Product search and autocomplete over the search backend, the ranking pipeline, the live
rules and the catalog (``/v1/search``, the console's search page). The stages are
:func:`serving.services.run_search`'s."""

from __future__ import annotations

from dataclasses import dataclass, replace

from analytics.search_log import SearchLog
from core.settings import Settings
from data.catalog import Catalog
from ranking.hooks import RulesHook
from ranking.pipeline import Pipeline
from search.backend import SearchBackend
from search.query import SearchRequest
from search.result import Suggestion
from serving.schemas import SearchOut
from serving.services import run_search, search_backend


@dataclass(frozen=True, slots=True)
class ProductSearch:
    backend: SearchBackend | None
    """None when no index is built: searching answers 503 saying how to build one."""
    pipeline: Pipeline
    rules: RulesHook
    catalog: Catalog
    settings: Settings
    log: SearchLog | None = None
    """Where storefront searches are logged for search analytics."""

    def search(self, req: SearchRequest, *, debug: bool, request_id: str) -> SearchOut:
        return run_search(
            req, backend=self.backend, pipeline=self.pipeline, rules=self.rules,
            catalog=self.catalog, settings=self.settings, debug=debug, request_id=request_id,
            search_log=self.log,
        )

    def suggest(self, prefix: str, size: int) -> list[Suggestion]:
        return search_backend(self.backend).suggest(prefix, size)

    def healthy(self) -> bool:
        """The backend answers (False when there is none or it is unreachable)."""
        if self.backend is None:
            return False
        try:
            return bool(self.backend.health())
        except Exception:  # an unreachable backend is "not ready", not an error
            return False

    def unlogged(self) -> ProductSearch:
        """The same search, kept out of the search log (the console's own searches)."""
        return replace(self, log=None)
