"""The engine remembers how a query was relaxed, per index state, on every backend: a repeated
relaxed query runs the one plan that answered it, and a write makes it look again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from search.analysis import Analyzer, load_synonyms
from search.backend import SearchBackend
from search.engine import SearchEngine
from search.memo import StateMemo
from search.query import SearchRequest
from search.result import SearchResult
from tests.search.conftest import BACKENDS
from tests.search.test_contract_engine import ITEMS


class _Counting:
    """A real backend that counts the searches it answers."""

    def __init__(self, backend: SearchBackend) -> None:
        self.inner = backend
        self.searches = 0

    def __getattr__(self, attr: str) -> object:
        return getattr(self.inner, attr)

    def search(self, request: SearchRequest, plan: object = None) -> SearchResult:
        self.searches += 1
        return self.inner.search(request, plan)  # type: ignore[arg-type]


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchEngine]:
    analyzer = Analyzer(load_synonyms(None))
    backend: SearchBackend
    if request.param == "embedded":
        from search.tantivy_backend import TantivyBackend

        backend = TantivyBackend(tmp_path / "index", analyzer=analyzer)
    else:
        from search.opensearch_backend import OpenSearchBackend

        url = request.getfixturevalue("opensearch_url")
        backend = OpenSearchBackend(
            url, index=f"shoprank-memo-{uuid.uuid4().hex[:10]}", analyzer=analyzer
        )
    eng = SearchEngine(_Counting(backend), analyzer=analyzer, aids_root=tmp_path / "aids")  # type: ignore[arg-type]
    eng.rebuild(ITEMS)
    yield eng
    eng.close()


def test_repeated_relaxed_query_runs_the_remembered_plan(engine: SearchEngine) -> None:
    counting: _Counting = engine.backend  # type: ignore[assignment]
    req = SearchRequest(text="TrailFox 跑步鞋", size=20, facets=("brand",))
    before = counting.searches
    first = engine.search(req)
    first_calls = counting.searches - before
    assert first.relaxation is not None and first.relaxation.dropped == ("trailfox",)
    before = counting.searches
    again = engine.search(req)
    assert counting.searches - before == 1 < first_calls  # strict, counts, steps: skipped
    assert [h.item_id for h in again.hits] == [h.item_id for h in first.hits]
    assert again.relaxation == first.relaxation
    assert again.facets == first.facets and again.total == first.total


def test_a_write_makes_the_engine_look_again(engine: SearchEngine) -> None:
    req = SearchRequest(text="TrailFox 跑步鞋", size=20)
    assert engine.search(req).relaxation is not None
    shoe = ITEMS[6].model_copy(
        update={
            "item_id": "tf1",
            "title": "TrailFox 越野跑步鞋 Trail Running Shoes",
            "brand": "TrailFox",
        }
    )
    engine.upsert([shoe])
    res = engine.search(req)
    assert res.relaxation is None
    assert [h.item_id for h in res.hits] == ["tf1"]


def test_memo_forgets_other_states_and_old_entries() -> None:
    memo: StateMemo[int] = StateMemo(size=2, ttl_seconds=60)
    memo.put("g1", "a", 1)
    memo.put("g1", "b", 2)
    assert memo.get("g1", "a") == 1 and memo.get("g2", "a") is None
    memo.put("g1", "c", 3)  # over size: the least recently used ("b") goes
    assert memo.get("g1", "b") is None and memo.get("g1", "c") == 3
    memo.put("g2", "a", 4)  # a new state forgets the old one
    assert memo.get("g1", "a") is None and memo.get("g2", "a") == 4
    expired: StateMemo[int] = StateMemo(size=2, ttl_seconds=0)
    expired.put("g1", "a", 1)
    assert expired.get("g1", "a") is None


def test_embedded_write_by_another_process_is_seen_at_once(tmp_path: Path) -> None:
    from search.tantivy_backend import TantivyBackend

    analyzer = Analyzer(load_synonyms(None))
    reader = SearchEngine(
        TantivyBackend(tmp_path / "index", analyzer=analyzer),
        analyzer=analyzer,
        aids_root=tmp_path / "aids",
    )
    reader.rebuild(ITEMS)
    req = SearchRequest(text="TrailFox 跑步鞋", size=20)
    assert reader.search(req).relaxation is not None
    # another engine over the same index folder, as an API worker in another process
    writer = SearchEngine(
        TantivyBackend(tmp_path / "index", analyzer=analyzer),
        analyzer=analyzer,
        aids_root=tmp_path / "aids",
    )
    shoe = ITEMS[6].model_copy(update={"item_id": "tf1", "brand": "TrailFox"})
    writer.upsert([shoe])
    res = reader.search(req)
    assert res.relaxation is None and [h.item_id for h in res.hits] == ["tf1"]
