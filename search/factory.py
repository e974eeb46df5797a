"""Choose the configured search backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.analysis import Analyzer

if TYPE_CHECKING:
    from core.settings import Settings
    from search.backend import SearchBackend


def open_backend(settings: Settings) -> SearchBackend:
    """The embedded tantivy index under ``settings.index_dir``, or OpenSearch at
    ``settings.opensearch_url`` (``settings.effective_search_backend`` decides)."""
    analyzer = Analyzer.from_file(settings.synonyms_file)
    if settings.effective_search_backend == "opensearch":
        from search.errors import BackendUnavailableError

        if not settings.opensearch_url:
            raise BackendUnavailableError(
                "search_backend is 'opensearch' but no URL is set; set SHOPRANK_OPENSEARCH_URL"
            )
        from search.opensearch_backend import OpenSearchBackend

        return OpenSearchBackend(
            settings.opensearch_url, index=settings.opensearch_index, analyzer=analyzer,
            read_timeout=settings.search_timeout_seconds,
        )
    from search.tantivy_backend import TantivyBackend

    return TantivyBackend(settings.index_dir / "search", analyzer=analyzer)
