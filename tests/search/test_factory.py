"""`open_backend` picks the backend from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import get_settings
from search.errors import BackendUnavailableError, IndexNotFoundError
from search.factory import open_backend
from search.query import SearchRequest
from tests.search import catalog


def test_embedded_by_default(tmp_path: Path) -> None:
    s = get_settings(home=tmp_path, opensearch_url=None, search_backend="auto")
    b = open_backend(s)
    try:
        assert b.name == "embedded"
        assert not b.health()
        with pytest.raises(IndexNotFoundError, match="shoprank index"):
            b.search(SearchRequest(text="red"))
        b.index_items(catalog.items())
        assert b.health()
        assert (tmp_path / "index" / "search" / "CURRENT").is_file()
    finally:
        b.close()
    # a second process-like instance sees the same index
    b2 = open_backend(s)
    assert b2.count() == len(catalog.items())
    b2.close()


def test_opensearch_without_url_is_a_clear_error(tmp_path: Path) -> None:
    s = get_settings(home=tmp_path, opensearch_url=None, search_backend="opensearch")
    with pytest.raises(BackendUnavailableError, match="SHOPRANK_OPENSEARCH_URL"):
        open_backend(s)


def test_custom_synonyms_file(tmp_path: Path) -> None:
    syn = tmp_path / "syn.txt"
    syn.write_text("frock, 連衣裙\n", encoding="utf-8")
    s = get_settings(
        home=tmp_path, opensearch_url=None, search_backend="embedded", synonyms_file=syn
    )
    b = open_backend(s)
    try:
        b.index_items(catalog.items())
        got = {h.item_id for h in b.search(SearchRequest(text="frock", size=50)).hits}
        assert {"d1", "d3"} <= got
    finally:
        b.close()
