"""Behaviour vectors (session co-occurrence, search → click pairs) and their use by the engine
on every backend: a query no title matches finds what shoppers chose for it, and what they
browse with it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from data.event_table import EVENT_SCHEMA
from search.aids import CatalogAids
from search.analysis import Analyzer, load_synonyms
from search.behaviour import BehaviourIndex, query_key
from search.engine import EngineConfig, SearchEngine
from search.query import RangeFilter, SearchRequest
from tests.search.conftest import BACKENDS
from tests.search.test_contract_engine import ITEMS

CAMPING = "露營裝備"
"""A shop's word for camping gear: no title, category or variant holds it."""
_T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _events() -> pa.Table:
    """Sessions that browse the hiking backpack (t1) with the blue running shoes (r2), the
    two smartwatches together, the two laptops together; searches for `CAMPING` that end in
    a click on the backpack."""
    rows: list[dict[str, object]] = []

    def add(session: str, item: str, type_: str = "view", query: str | None = None) -> None:
        rows.append(
            {
                "event_id": f"e{len(rows)}",
                "user_id": f"u-{session}",
                "item_id": item,
                "type": type_,
                "timestamp": _T0 + timedelta(minutes=len(rows)),
                "session_id": session,
                "query": query,
            }
        )

    for s in range(6):
        add(f"hike{s}", "t1")
        add(f"hike{s}", "r2")
        add(f"watch{s}", "w1")
        add(f"watch{s}", "w2")
        add(f"laptop{s}", "n1")
        add(f"laptop{s}", "n2")
        add(f"dress{s}", "d1")
        add(f"dress{s}", "d2")
    for s in range(3):
        add(f"camp{s}", "t1", "click", query=CAMPING)
    add("camp9", "e1", "click", query="Bluetooth  Earbuds")
    return pa.Table.from_pylist(rows, schema=EVENT_SCHEMA)


def test_session_neighbours_and_clicks_per_query() -> None:
    beh = BehaviourIndex.build(_events(), [i.item_id for i in ITEMS])
    assert beh.neighbours([("t1", 1.0)], 1)[0][0] == "r2"
    assert beh.neighbours([("w1", 1.0)], 1)[0][0] == "w2"
    assert beh.neighbours([("n2", 1.0)], 1, exclude={"n1"})[0][0] != "n1"
    assert beh.clicked(CAMPING) == [("t1", 3)]
    # the query key is normalized: spacing, case and script do not matter
    assert query_key("bluetooth earbuds") == query_key("Bluetooth  Earbuds")
    assert beh.clicked("bluetooth earbuds") == [("e1", 1)]
    cands, logged = beh.candidates(CAMPING, [], 3)
    assert logged and [i for i, _ in cands[:2]] == ["t1", "r2"]
    # items without events (w1's session mates excepted) have no vector
    assert "e2" not in beh.item_ids


def test_behaviour_vectors_are_stored_with_the_aids(tmp_path: Path) -> None:
    aids = CatalogAids.build(ITEMS, dense=False, events=_events())
    aids.save(tmp_path / "gen")
    loaded = CatalogAids.load(tmp_path / "gen")
    assert loaded is not None and loaded.behaviour is not None
    assert aids.behaviour is not None
    assert loaded.behaviour.item_ids == aids.behaviour.item_ids
    assert loaded.behaviour.clicks == aids.behaviour.clicks
    assert loaded.behaviour.neighbours([("t1", 1.0)], 2) == aids.behaviour.neighbours(
        [("t1", 1.0)], 2
    )


@pytest.fixture(params=BACKENDS, scope="module")
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SearchEngine]:
    root = tmp_path_factory.mktemp("behaviour")
    analyzer = Analyzer(load_synonyms(None))
    if request.param == "embedded":
        from search.tantivy_backend import TantivyBackend

        backend = TantivyBackend(root / "index", analyzer=analyzer)
    else:
        from search.opensearch_backend import OpenSearchBackend

        url = request.getfixturevalue("opensearch_url")
        backend = OpenSearchBackend(
            url, index=f"shoprank-beh-{uuid.uuid4().hex[:10]}", analyzer=analyzer
        )
    eng = SearchEngine(backend, analyzer=analyzer, aids_root=root / "aids")
    eng.rebuild(ITEMS, events=_events())
    yield eng
    eng.close()


def _with(engine: SearchEngine, **config: object) -> SearchEngine:
    """Another engine over the same backend and aids, with other settings."""
    return SearchEngine(
        engine.backend,
        analyzer=engine.analyzer,
        aids_root=engine.aids_root,
        config=EngineConfig(**config),  # type: ignore[arg-type]
    )


def test_query_without_lexical_match_finds_what_shoppers_chose(engine: SearchEngine) -> None:
    res = engine.search(SearchRequest(text=CAMPING, size=5))
    got = [h.item_id for h in res.hits]
    assert got[:2] == ["t1", "r2"]  # clicked for it, then browsed with it in sessions
    assert res.dense_hits == len(got) == res.total
    assert _with(engine, behaviour=False).search(SearchRequest(text=CAMPING, size=5)).hits == []


def test_behaviour_hits_pass_the_filters(engine: SearchEngine) -> None:
    req = SearchRequest(text=CAMPING, size=5, filters=(RangeFilter(field="price", gte=1995),))
    assert [h.item_id for h in engine.search(req).hits] == []  # t1 and r2 cost 1,990
    req = SearchRequest(text=CAMPING, size=5, filters=(RangeFilter(field="price", lte=1990),))
    assert [h.item_id for h in engine.search(req).hits][:2] == ["t1", "r2"]


def test_lexical_answers_keep_their_order_at_the_top(engine: SearchEngine) -> None:
    with_beh = [h.item_id for h in engine.search(SearchRequest(text="筆記型電腦", size=5)).hits]
    without = _with(engine, behaviour=False).search(SearchRequest(text="筆記型電腦", size=5))
    assert set(with_beh) == {h.item_id for h in without.hits} == {"n1", "n2"}
