"""Contract tests of `search.engine.SearchEngine` over every backend: regional vocabulary,
price words, relaxation, "did you mean" and hybrid retrieval behave the same on the embedded
index and on a real OpenSearch node.

The shop below is written as a Taiwan shop writes titles; the queries as shoppers in the
mainland and Hong Kong type them. Expected items are read from the items' fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data.models import Item
from search.analysis import Analyzer, load_synonyms
from search.engine import EngineConfig, SearchEngine
from search.query import RangeFilter, SearchRequest
from tests.search.conftest import BACKENDS

_ROWS = [
    # item_id, title, category, brand, price
    ("w1", "黑色智慧手錶 Black Smartwatch", "數碼 > 穿戴裝置 > 智慧手錶", "Nova", 4990),
    ("w2", "白色輕薄智慧手錶 White Air Smartwatch", "數碼 > 穿戴裝置 > 智慧手錶", "Orbit", 5990),
    ("n1", "輕薄筆記型電腦 Air Laptop", "數碼 > 電腦 > 筆記型電腦", "Zenix", 29900),
    ("n2", "旗艦筆記型電腦 Pro Laptop", "數碼 > 電腦 > 筆記型電腦", "Nova", 45900),
    ("d1", "粉色碎花連衣裙 Pink Floral Dress", "服裝 > 女裝 > 連衣裙", "MiMi", 990),
    ("d2", "黑色修身連衣裙 Black Slim Dress", "服裝 > 女裝 > 連衣裙", "Sora", 1290),
    ("r1", "紅色減震跑步鞋 Red Cushioned Running Shoes", "鞋靴 > 運動鞋 > 跑步鞋", "Pace", 2490),
    (
        "r2",
        "藍色輕量跑步鞋 Blue Lightweight Running Shoes",
        "鞋靴 > 運動鞋 > 跑步鞋",
        "StrideOn",
        1990,
    ),
    ("t1", "紅色登山背包 Red Hiking Backpack", "運動 > 戶外 > 登山背包", "TrailFox", 1990),
    ("e1", "藍牙耳機 Bluetooth Earbuds", "數碼 > 音訊 > 藍牙耳機", "Kestrel", 450),
    ("e2", "降噪藍牙耳機 Noise Cancelling Earbuds", "數碼 > 音訊 > 藍牙耳機", "Kestrel", 1990),
]
ITEMS = [
    Item(
        item_id=i,
        title=t,
        category=tuple(c.split(" > ")),
        brand=b,
        price=p,
        stock=5,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    for i, t, c, b, p in _ROWS
]
LEAF = {i.item_id: i.category[-1] for i in ITEMS}


def _leaf_ids(leaf: str) -> set[str]:
    return {i for i, lf in LEAF.items() if lf == leaf}


@pytest.fixture(params=BACKENDS, scope="module")
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SearchEngine]:
    root = tmp_path_factory.mktemp("engine")
    analyzer = Analyzer(load_synonyms(None))
    if request.param == "embedded":
        from search.tantivy_backend import TantivyBackend

        backend = TantivyBackend(root / "index", analyzer=analyzer)
    else:
        from search.opensearch_backend import OpenSearchBackend

        url = request.getfixturevalue("opensearch_url")
        backend = OpenSearchBackend(
            url, index=f"shoprank-eng-{uuid.uuid4().hex[:10]}", analyzer=analyzer
        )
    eng = SearchEngine(backend, analyzer=analyzer, aids_root=root / "aids")
    eng.rebuild(ITEMS)
    yield eng
    eng.close()


def ids(engine: SearchEngine, text: str, **kw: object) -> list[str]:
    req = SearchRequest(text=text, size=20, **kw)  # type: ignore[arg-type]
    return [h.item_id for h in engine.search(req).hits]


@pytest.mark.parametrize(
    ("text", "leaf"),
    [
        ("智能手表", "智慧手錶"),  # mainland word, Taiwan title (OpenCC s2twp)
        ("笔记本电脑", "筆記型電腦"),  # mainland (s2twp: 筆記型電腦)
        ("手提電腦", "筆記型電腦"),  # Hong Kong (shipped variants list)
        ("藍牙耳筒", "藍牙耳機"),  # Hong Kong
    ],
)
def test_regional_words_find_the_taiwan_titles(engine: SearchEngine, text: str, leaf: str) -> None:
    res = engine.search(SearchRequest(text=text, size=20))
    got = [h.item_id for h in res.hits]
    assert set(got[: len(_leaf_ids(leaf))]) == _leaf_ids(leaf), text
    assert res.relaxation is None, text  # found by the strict query


def test_colour_family_finds_the_titles_colour(engine: SearchEngine) -> None:
    for text in ("粉紅色連衣裙", "粉红 连衣裙", "pink dress"):
        assert ids(engine, text)[0] == "d1", text


def test_price_words_become_a_price_filter(engine: SearchEngine) -> None:
    res = engine.search(SearchRequest(text="500元以下 藍牙耳機", size=20))
    assert [h.item_id for h in res.hits] == ["e1"]
    assert res.price_filter == {"lte": 500.0}
    res = engine.search(SearchRequest(text="耳機 1000元以上", size=20))
    assert [h.item_id for h in res.hits] == ["e2"] and res.price_filter == {"gte": 1000.0}
    # a price filter the request carries wins; the words only leave the text
    req = SearchRequest(text="500元以下 藍牙耳機", filters=(RangeFilter(field="price", gte=1000),))
    assert [h.item_id for h in engine.search(req).hits] == ["e2"]


def test_brand_without_the_category_relaxes_to_the_category(engine: SearchEngine) -> None:
    res = engine.search(SearchRequest(text="TrailFox 跑步鞋", size=20))
    assert {h.item_id for h in res.hits} == _leaf_ids("跑步鞋")
    assert res.relaxation is not None
    assert res.relaxation.steps[-1] == "drop_brand_colour"
    assert res.relaxation.dropped == ("trailfox",)


def test_unknown_word_is_dropped(engine: SearchEngine) -> None:
    res = engine.search(SearchRequest(text="大尺碼 連衣裙", size=20))
    assert {h.item_id for h in res.hits} == _leaf_ids("連衣裙")
    assert res.relaxation is not None and "drop_unknown" in res.relaxation.steps
    assert res.relaxation.dropped == ("大尺码",)


def test_typo_of_a_synonym_is_corrected(engine: SearchEngine) -> None:
    res = engine.search(SearchRequest(text="sneekers", size=20))
    assert {h.item_id for h in res.hits[:2]} == _leaf_ids("跑步鞋")
    assert res.relaxation is not None and res.relaxation.steps[0] == "spelling"
    assert res.relaxation.corrected == {"sneekers": "sneaker"}
    assert res.suggestion == "sneaker"


def test_typo_next_to_a_word_is_suggested_and_found(engine: SearchEngine) -> None:
    res = engine.search(SearchRequest(text="black drses", size=20))
    assert res.hits[0].item_id == "d2"
    assert res.suggestion == "black dress"


def test_strict_hits_are_not_relaxed_and_known_words_get_no_suggestion(
    engine: SearchEngine,
) -> None:
    res = engine.search(SearchRequest(text="running shoes", size=20))
    assert res.relaxation is None and res.suggestion is None
    assert {h.item_id for h in res.hits[:2]} == _leaf_ids("跑步鞋")


def test_nothing_near_stays_empty(engine: SearchEngine) -> None:
    res = engine.search(SearchRequest(text="zzqx", size=20))
    assert res.hits == [] and res.total == 0


def test_dense_retrieval_answers_what_words_do_not(engine: SearchEngine, tmp_path: Path) -> None:
    # one run-together word matches no indexed token (and relaxation is off): only the
    # character n-gram vectors find the backpack
    plain = SearchEngine(
        engine.backend,
        analyzer=engine.analyzer,
        aids_root=engine.aids_root,
        config=EngineConfig(relax=False),
    )
    res = plain.search(SearchRequest(text="hikingbackpack", size=5))
    assert res.hits and res.hits[0].item_id == "t1"
    assert res.dense_hits >= 1
    off = SearchEngine(
        engine.backend,
        analyzer=engine.analyzer,
        aids_root=engine.aids_root,
        config=EngineConfig(relax=False, hybrid=False),
    )
    assert off.search(SearchRequest(text="hikingbackpack", size=5)).hits == []


def test_filters_apply_to_dense_hits(engine: SearchEngine) -> None:
    plain = SearchEngine(
        engine.backend,
        analyzer=engine.analyzer,
        aids_root=engine.aids_root,
        config=EngineConfig(relax=False),
    )
    req = SearchRequest(
        text="hikingbackpack", size=5, filters=(RangeFilter(field="price", lte=1000),)
    )
    assert all(h.price <= 1000 for h in plain.search(req).hits)
    assert "t1" not in {h.item_id for h in plain.search(req).hits}


def test_paging_the_fused_list(engine: SearchEngine) -> None:
    full = ids(engine, "藍色 紅色 跑步鞋 登山背包")
    page2 = engine.search(SearchRequest(text="藍色 紅色 跑步鞋 登山背包", size=1, page=2))
    assert [h.item_id for h in page2.hits] == full[1:2]
    assert page2.offset == 1
