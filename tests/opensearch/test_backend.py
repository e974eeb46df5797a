"""What only the OpenSearch backend has: the alias life cycle, the index mapping, its error
messages, the request body it sends, and scores on the embedded backend's scale.

The shared behaviour (hits, facets, synonyms, typos, writes, rebuild while searching) is in
the contract tests under tests/search/, which run on this backend too.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from data.text import tokens
from search.analysis import Analyzer, parse_synonyms
from search.errors import BackendUnavailableError, IndexNotFoundError, SearchError
from search.opensearch_backend import OpenSearchBackend
from search.query import SearchRequest
from tests.search import catalog

# Tests using the node are marked `opensearch` by tests/conftest.py (they use opensearch_url).
ITEMS = catalog.items()


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer(parse_synonyms(catalog.SYNONYMS.splitlines(), "test synonyms"))


@pytest.fixture()
def backend(opensearch_url: str, analyzer: Analyzer) -> Iterator[OpenSearchBackend]:
    b = OpenSearchBackend(opensearch_url, index=f"shoprank-os-{uuid.uuid4().hex[:10]}",
                          analyzer=analyzer)
    yield b
    b.client.indices.delete(index=f"{b.alias}*", ignore_unavailable=True)
    b.close()


def _generations(b: OpenSearchBackend) -> list[str]:
    return sorted(b.client.indices.get(index=f"{b.alias}-*"))


def _alias_targets(b: OpenSearchBackend) -> list[str]:
    return sorted(b.client.indices.get_alias(name=b.alias))


def test_rebuild_swaps_the_alias_and_keeps_one_previous_index(backend: OpenSearchBackend) -> None:
    backend.rebuild(ITEMS[:5])
    first = _generations(backend)
    assert len(first) == 1 and _alias_targets(backend) == first

    backend.rebuild(ITEMS[:7])
    second = _generations(backend)
    assert len(second) == 2 and second[0] == first[0]
    assert _alias_targets(backend) == [second[1]]
    assert backend.count() == 7

    backend.rebuild(ITEMS[:3])
    third = _generations(backend)
    # the first is gone; the one just replaced stays until the next rebuild
    assert third[0] == second[1] and first[0] not in third and len(third) == 2
    assert _alias_targets(backend) == [third[1]]
    assert backend.count() == 3


def test_rebuild_replaces_a_plain_index_with_the_alias_name(backend: OpenSearchBackend) -> None:
    backend.client.indices.create(index=backend.alias, body={"settings": {"number_of_replicas": 0}})
    assert backend.rebuild(ITEMS) == len(ITEMS)
    targets = _alias_targets(backend)
    assert len(targets) == 1 and targets[0].startswith(f"{backend.alias}-")
    assert backend.count() == len(ITEMS)


def test_first_write_creates_index_and_alias(backend: OpenSearchBackend) -> None:
    assert backend.count() == 0 and not backend.health()
    assert backend.upsert(ITEMS[:2]) == 2
    assert len(_alias_targets(backend)) == 1
    assert backend.count() == 2 and backend.health()


def test_text_fields_hold_the_shared_tokens(backend: OpenSearchBackend) -> None:
    backend.index_items(ITEMS)
    item = next(i for i in ITEMS if i.item_id == "d1")  # 紅色碎花連衣裙 夏季
    src = backend.client.get(index=backend.alias, id="d1")["_source"]
    assert src["title"] == [" ".join(tokens(item.title))]
    analyzed = backend.client.indices.analyze(
        index=backend.alias, body={"field": "title", "text": src["title"][0]})
    assert [t["token"] for t in analyzed["tokens"]] == tokens(item.title)
    assert "红色" in tokens(item.title)  # traditional was folded to simplified before indexing


def test_search_sends_exactly_search_body(backend: OpenSearchBackend) -> None:
    backend.index_items(ITEMS, popularity=catalog.popularity())
    request = SearchRequest(text="red dress", facets=["brand", "price"],
                            filters=[{"field": "brand", "values": ["Zara", "H&M"]}])
    raw = backend.client.search(index=backend.alias, body=backend.search_body(request))
    ours = backend.search(request)
    assert [h["_id"] for h in raw["hits"]["hits"]] == [h.item_id for h in ours.hits]
    assert raw["hits"]["total"]["value"] == ours.total > 0
    brands = {b["key"]: b["doc_count"] for b in raw["aggregations"]["brand"]["values"]["buckets"]}
    assert brands == {v.value: v.count for v in ours.facets["brand"]}


def test_scores_are_on_the_embedded_scale(
    backend: OpenSearchBackend, analyzer: Analyzer, tmp_path: Path
) -> None:
    from search.tantivy_backend import TantivyBackend

    embedded = TantivyBackend(tmp_path / "idx", analyzer=analyzer)
    try:
        backend.rebuild(ITEMS)
        embedded.rebuild(ITEMS)
        for text in ("红色连衣裙", "red dress", "headphnoes", "Levis denim"):
            req = SearchRequest(text=text, size=20)
            ours = {h.item_id: h.score for h in backend.search(req).hits}
            theirs = {h.item_id: h.score for h in embedded.search(req).hits}
            assert ours.keys() == theirs.keys(), text
            for item_id, score in ours.items():
                # The only gap left: Lucene's average field length counts the documents
                # that have the field, tantivy's all documents (descriptions are sparse).
                assert score == pytest.approx(theirs[item_id], rel=0.05), (text, item_id)
    finally:
        embedded.close()


def test_missing_index_is_a_clear_error(backend: OpenSearchBackend) -> None:
    with pytest.raises(IndexNotFoundError, match="shoprank index"):
        backend.search(SearchRequest(text="dress"))
    assert backend.count() == 0
    assert backend.health() is False


def test_unreachable_node_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    b = OpenSearchBackend(f"http://127.0.0.1:{port}", index="shoprank-nowhere", timeout=2)
    with pytest.raises(BackendUnavailableError, match="scripts/opensearch start"):
        b.search(SearchRequest(text="dress"))
    assert b.health() is False
    b.close()


def test_bad_index_name_is_refused() -> None:
    with pytest.raises(SearchError, match="SHOPRANK_OPENSEARCH_INDEX"):
        OpenSearchBackend("http://127.0.0.1:9200", index="Bad Name")
