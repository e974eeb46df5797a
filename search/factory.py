"""Choose the configured search backend, wrapped in the `search.engine.SearchEngine`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.analysis import Analyzer
from search.engine import SearchEngine

if TYPE_CHECKING:
    from core.settings import Settings
    from search.backend import SearchBackend


def open_backend(settings: Settings) -> SearchEngine:
    """The search engine over the embedded tantivy index under ``settings.index_dir``, or
    over OpenSearch at ``settings.opensearch_url`` (``settings.effective_search_backend``
    decides). The engine's per-generation aids live under ``settings.index_dir``."""
    analyzer = Analyzer.from_file(settings.synonyms_file)
    backend = _open_raw(settings, analyzer)
    if backend.name == "opensearch":
        aids_root = settings.index_dir / "opensearch-aids" / settings.opensearch_index
    else:
        aids_root = settings.index_dir / "search-aids"
    return SearchEngine(backend, analyzer=analyzer, aids_root=aids_root)


def _open_raw(settings: Settings, analyzer: Analyzer) -> SearchBackend:
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
            write_timeout=settings.search_write_timeout_seconds,
        )
    from search.tantivy_backend import TantivyBackend

    return TantivyBackend(settings.index_dir / "search", analyzer=analyzer)
