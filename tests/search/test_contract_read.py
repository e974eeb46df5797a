"""Contract tests on a read-only index of the test catalog, run on every backend.

Expected values come from the catalog itself (`tests/search/catalog.py`) computed here in
plain Python, or from the known meaning of the titles.
"""

from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from data.models import Item
from search.backend import SearchBackend
from search.query import RangeFilter, SearchRequest
from tests.search import catalog

ITEMS = {i.item_id: i for i in catalog.items()}
ACTIVE = [i for i in ITEMS.values() if i.is_active]
POP = catalog.popularity()


def ids(backend: SearchBackend, **kw: object) -> list[str]:
    return [h.item_id for h in backend.search(SearchRequest(size=100, **kw)).hits]  # type: ignore[arg-type]


# ---------------------------------------------------------------- text matching


def test_english_query_finds_red_dresses_first(shop: SearchBackend) -> None:
    res = shop.search(SearchRequest(text="red dress", size=10))
    got = [h.item_id for h in res.hits]
    # d1 is 紅色…連衣裙 (found through the 紅色=red and 連衣裙=dress synonyms)
    assert set(got[:3]) == {"d1", "d2", "d5"}
    assert "x1" not in got  # inactive
    for h in res.hits[:3]:
        item = ITEMS[h.item_id]
        assert item.category[-1] == "連衣裙"


def test_chinese_query_matches_both_scripts_and_word_order(shop: SearchBackend) -> None:
    for text in ("連衣裙 紅色", "红色连衣裙", "紅色 連衣裙"):
        got = ids(shop, text=text)
        assert set(got[:3]) == {"d1", "d2", "d5"}, text
        assert all(ITEMS[i].category[-1] == "連衣裙" for i in got), text


def test_simplified_query_finds_traditional_titles(shop: SearchBackend) -> None:
    got = set(ids(shop, text="连衣裙"))
    assert {"d1", "d3"} <= got
    got = set(ids(shop, text="修身牛仔裤"))  # 褲 in the title
    assert got == {"j1"}


def test_synonyms_find_other_language_and_script(shop: SearchBackend) -> None:
    got = set(ids(shop, text="手機"))
    # p2 says 手机 (simplified), p3 "Mobile Phone", p4 手機殼 (contains 手機)
    assert {"p1", "p2", "p3", "p4"} <= got
    assert set(ids(shop, text="mobile phone")) >= {"p1", "p2", "p3"}
    assert set(ids(shop, text="cellphone")) >= {"p1", "p2", "p3"}
    assert set(ids(shop, text="headphones")) >= {"h1", "h2"}


def test_a_word_naming_the_category_ranks_its_items_first(shop: SearchBackend) -> None:
    # p4 透明手機殼 (a case, category 配件) has the shortest title with 手機 in it, so BM25
    # alone ranks it first; the phones are in the category named 手機.
    for text in ("手機", "手机", "mobile phone", "cellphone"):
        got = ids(shop, text=text)
        assert set(got[:3]) == {"p1", "p2", "p3"}, (text, got)
    assert ids(shop, text="手機殼") == ["p4"]


def test_one_character_alone_matches_it_anywhere(shop: SearchBackend) -> None:
    dresses = {i.item_id for i in ACTIVE if i.category[-1] == "連衣裙"}
    assert set(ids(shop, text="裙")) == dresses  # in the title or the category name
    assert set(ids(shop, text="紅色裙")) == {"d1", "d2", "d5"}  # red, and 裙 anywhere
    assert set(ids(shop, text="紅色的裙")) == {"d1", "d2", "d5"}  # 的 is dropped
    hl = {h.item_id: h.highlighted_title for h in shop.search(SearchRequest(text="裙")).hits}
    assert hl["d3"] == "藍色連衣<em>裙</em>"


def test_all_words_must_match(shop: SearchBackend) -> None:
    got = set(ids(shop, text="blue dress"))
    assert got == {"d3", "d4"}  # 藍色連衣裙 via synonyms, Blue Denim Dress
    assert ids(shop, text="sony laptop") == []


def test_full_width_and_case_are_normalized(shop: SearchBackend) -> None:
    assert ids(shop, text="ＲＥＤ ＤＲＥＳＳ") == ids(shop, text="red dress")


def test_typo_tolerance(shop: SearchBackend) -> None:
    got = ids(shop, text="red dreses")
    assert {"d2", "d5"} <= set(got)
    assert ids(shop, text="red dreses", typo_tolerance=False) == []
    assert set(ids(shop, text="sneekers")) == {"s2"}
    assert set(ids(shop, text="headphnoes")) == {"h2"}  # transposition


def test_empty_text_matches_every_active_item(shop: SearchBackend) -> None:
    res = shop.search(SearchRequest(text="", size=100))
    assert res.total == len(ACTIVE)
    assert {h.item_id for h in res.hits} == {i.item_id for i in ACTIVE}


def test_inactive_items_only_on_request(shop: SearchBackend) -> None:
    assert "x1" not in ids(shop, text="discontinued")
    assert ids(shop, text="discontinued", include_inactive=True) == ["x1"]


def test_highlight_marks_matched_words_in_original_title(shop: SearchBackend) -> None:
    res = shop.search(
        SearchRequest(text="连衣裙", filters=[{"field": "brand", "values": ["Zara"]}])
    )
    h = {x.item_id: x for x in res.hits}
    assert h["d3"].highlighted_title == "藍色<em>連衣裙</em>"
    assert h["d2"].highlighted_title == "Red Summer <em>Dress</em>"
    hm = shop.search(SearchRequest(text="party")).hits[0]
    assert hm.highlighted_title == "Red Dresses for <em>Party</em>"
    assert "H&amp;M" not in hm.highlighted_title and hm.brand == "H&M"


def test_hits_carry_render_fields(shop: SearchBackend) -> None:
    hit = shop.search(SearchRequest(text="小米")).hits[0]
    item = ITEMS["p2"]
    assert hit.item_id == "p2"
    assert (hit.title, hit.brand, hit.category, hit.price, hit.stock) == (
        item.title, item.brand, item.category, item.price, item.stock,
    )
    assert hit.popularity == POP["p2"]
    assert hit.score > 0


# ---------------------------------------------------------------- filters


def _expected(pred: object) -> set[str]:
    return {i.item_id for i in ACTIVE if pred(i)}  # type: ignore[operator]


@pytest.mark.parametrize(
    ("filters", "pred"),
    [
        ([{"field": "brand", "values": ["Levis", "Sony"]}], lambda i: i.brand in ("Levis", "Sony")),
        ([{"field": "price", "gte": 200, "lte": 499}], lambda i: 200 <= i.price <= 499),
        ([{"field": "price", "gt": 199, "lt": 499}], lambda i: 199 < i.price < 499),
        ([{"field": "in_stock", "value": False}], lambda i: i.stock == 0),
        ([{"field": "stock", "gte": 10}], lambda i: i.stock >= 10),
        (
            [{"field": "category", "values": ["服裝 > 男裝"]}],
            lambda i: i.category[:2] == ("服裝", "男裝"),
        ),
        ([{"field": "category_l3", "values": ["T恤"]}], lambda i: i.category[2:3] == ("T恤",)),
        ([{"field": "tags", "values": ["running"]}], lambda i: "running" in i.tags),
        ([{"field": "merchant_id", "values": ["m1"]}], lambda i: i.merchant_id == "m1"),
        ([{"field": "rating", "gte": 4}], lambda i: i.rating is not None and i.rating >= 4),
        (  # same field → OR; different fields → AND
            [
                {"field": "price", "lt": 200},
                {"field": "price", "gte": 5000},
                {"field": "category", "values": ["電子"]},
            ],
            lambda i: (i.price < 200 or i.price >= 5000) and i.category[0] == "電子",
        ),
    ],
)
def test_filters(shop: SearchBackend, filters: list[dict[str, object]], pred: object) -> None:
    res = shop.search(SearchRequest(filters=filters, size=100))  # type: ignore[arg-type]
    want = _expected(pred)
    assert want, "the case must select something"
    assert {h.item_id for h in res.hits} == want
    assert res.total == len(want)


def test_filter_combined_with_text(shop: SearchBackend) -> None:
    got = ids(shop, text="red", filters=[{"field": "price", "lt": 200}])
    assert set(got) == {"d1", "t1", "t2"}


# ---------------------------------------------------------------- facets


def _count(values: object) -> Counter[str]:
    return Counter(v for v in values if v)  # type: ignore[union-attr]


def _top(c: Counter[str], n: int = 10) -> dict[str, int]:
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def test_facet_counts_match_catalog(shop: SearchBackend) -> None:
    res = shop.search(
        SearchRequest(facets=["brand", "category_l1", "category_l2", "tags", "price"])
    )
    brands = _count(i.brand for i in ACTIVE)
    assert {v.value: v.count for v in res.facets["brand"]} == _top(brands)
    order = [(v.count, v.value) for v in res.facets["brand"]]
    assert order == sorted(order, key=lambda cv: (-cv[0], cv[1]))
    assert {v.value: v.count for v in res.facets["category_l1"]} == _count(
        i.category[0] for i in ACTIVE
    )
    assert {v.value: v.count for v in res.facets["category_l2"]} == _count(
        i.category[1] for i in ACTIVE
    )
    assert {v.value: v.count for v in res.facets["tags"]} == _top(
        _count(t for i in ACTIVE for t in i.tags)
    )
    price = {v.value: v.count for v in res.facets["price"]}
    assert price == {
        "*-100": sum(i.price < 100 for i in ACTIVE),
        "100-200": sum(100 <= i.price < 200 for i in ACTIVE),
        "200-500": sum(200 <= i.price < 500 for i in ACTIVE),
        "500-1000": sum(500 <= i.price < 1000 for i in ACTIVE),
        "1000-*": sum(i.price >= 1000 for i in ACTIVE),
    }
    assert [v.value for v in res.facets["price"]] == [
        "*-100",
        "100-200",
        "200-500",
        "500-1000",
        "1000-*",
    ]


def test_custom_price_buckets_and_facet_size(shop: SearchBackend) -> None:
    req = SearchRequest(
        text="red",
        facets=[
            {"field": "price", "ranges": [{"lt": 150}, {"gte": 150, "lt": 300}, {"gte": 300}]},
            {"field": "brand", "size": 2},
        ],
    )
    res = shop.search(req)
    red = [ITEMS[i] for i in ids(shop, text="red")]
    assert [(v.value, v.count) for v in res.facets["price"]] == [
        ("*-150", sum(i.price < 150 for i in red)),
        ("150-300", sum(150 <= i.price < 300 for i in red)),
        ("300-*", sum(i.price >= 300 for i in red)),
    ]
    assert len(res.facets["brand"]) == 2


def test_multi_select_facets(shop: SearchBackend) -> None:
    req = SearchRequest(
        filters=[
            {"field": "brand", "values": ["Zara", "Levis"]},
            {"field": "price", "gte": 200, "lt": 500},
        ],
        facets=["brand", "price", "category_l3"],
        size=100,
    )
    res = shop.search(req)
    in_price = [i for i in ACTIVE if 200 <= i.price < 500]
    in_brand = [i for i in ACTIVE if i.brand in ("Zara", "Levis")]
    both = [i for i in in_price if i in in_brand]
    assert {h.item_id for h in res.hits} == {i.item_id for i in both}
    # brand counts ignore the brand filter but keep the price filter
    brand = {v.value: (v.count, v.selected) for v in res.facets["brand"]}
    assert {k: c for k, (c, _) in brand.items()} == _count(i.brand for i in in_price)
    assert {k for k, (_, s) in brand.items() if s} == {"Zara", "Levis"}
    # price counts ignore the price filter but keep the brand filter
    price = {v.value: (v.count, v.selected) for v in res.facets["price"]}
    assert price["200-500"] == (sum(200 <= i.price < 500 for i in in_brand), True)
    assert price["*-100"] == (0, False)
    # other facets use every filter
    assert {v.value: v.count for v in res.facets["category_l3"]} == _count(
        i.category[2] for i in both if len(i.category) > 2
    )


@pytest.mark.parametrize(
    ("flt", "keep"),
    [
        (
            {"field": "brand", "values": ["Zara", "Levis", "Nike"]},
            lambda i: i.brand in ("Zara", "Levis", "Nike"),
        ),
        ({"field": "price", "gt": 199, "lte": 499}, lambda i: 199 < i.price <= 499),
        ({"field": "price", "gte": 100, "lt": 100}, lambda i: False),
        ({"field": "rating", "gte": 4}, lambda i: i.rating is not None and i.rating >= 4),
        (
            {"field": "tags", "values": ["running", "denim"]},
            lambda i: bool({"running", "denim"} & set(i.tags)),
        ),
    ],
)
def test_one_filtered_facet(shop: SearchBackend, flt: dict[str, object], keep: object) -> None:
    field = str(flt["field"])
    facets = ["brand", "price", "category_l2", "tags", "rating"]
    res = shop.search(SearchRequest(filters=[flt], facets=facets, size=100))
    kept = [i for i in ACTIVE if keep(i)]  # type: ignore[operator]
    assert res.total == len(kept) and {h.item_id for h in res.hits} == {i.item_id for i in kept}
    counts = {f: {v.value: v.count for v in res.facets[f] if v.count} for f in facets}
    # the filtered field counts without its own filter, every other one with it
    own = ACTIVE if field in facets else kept
    for f in ("brand", "category_l2", "tags"):
        pool = own if f == field else kept
        if f == "brand":
            assert counts[f] == _top(_count(i.brand for i in pool)), f
        elif f == "category_l2":
            assert counts[f] == _count(i.category[1] for i in pool), f
        elif f == "tags":
            assert counts[f] == _top(_count(t for i in pool for t in i.tags)), f
    assert counts["price"] == {
        k: n for k, n in {
            "*-100": sum(i.price < 100 for i in (own if field == "price" else kept)),
            "100-200": sum(100 <= i.price < 200 for i in (own if field == "price" else kept)),
            "200-500": sum(200 <= i.price < 500 for i in (own if field == "price" else kept)),
            "500-1000": sum(500 <= i.price < 1000 for i in (own if field == "price" else kept)),
            "1000-*": sum(i.price >= 1000 for i in (own if field == "price" else kept)),
        }.items() if n
    }


def test_selected_value_outside_top_is_still_listed(shop: SearchBackend) -> None:
    res = shop.search(
        SearchRequest(
            text="red",
            filters=[{"field": "brand", "values": ["Sony"]}],
            facets=[{"field": "brand", "size": 1}],
        )
    )
    assert res.total == 0
    values = res.facets["brand"]
    assert values[-1].value == "Sony" and values[-1].selected and values[-1].count == 0
    assert values[0].count > 0


# ---------------------------------------------------------------- sort and paging


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("price_asc", lambda i: i.price, False),
        ("price_desc", lambda i: i.price, True),
        ("newest", lambda i: i.created_at, True),
        ("popularity", lambda i: POP[i.item_id], True),
    ],
)
def test_sorts(shop: SearchBackend, sort: str, key: object, reverse: bool) -> None:
    want = [i.item_id for i in sorted(ACTIVE, key=key, reverse=reverse)]  # type: ignore[arg-type]
    assert ids(shop, sort=sort) == want
    dresses = [i for i in want if ITEMS[i].category[-1] == "連衣裙"]
    assert ids(shop, text="連衣裙", sort=sort) == dresses


def test_relevance_scores_descend(shop: SearchBackend) -> None:
    hits = shop.search(SearchRequest(text="red", size=100)).hits
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True) and len(scores) >= 5


def test_paging_walks_the_whole_list(shop: SearchBackend) -> None:
    full = ids(shop, sort="price_asc")
    pages = []
    for page in range(1, 6):
        res = shop.search(SearchRequest(sort="price_asc", page=page, size=4))
        assert res.total == len(ACTIVE)
        assert res.offset == (page - 1) * 4
        pages.extend(h.item_id for h in res.hits)
    assert pages == full
    assert shop.search(SearchRequest(page=10, size=4)).hits == []


def test_rerank_depth_returns_top_n_from_rank_zero(shop: SearchBackend) -> None:
    req = SearchRequest(sort="price_asc", page=2, size=3, rerank_depth=8)
    res = shop.search(req)
    assert res.offset == 0
    assert [h.item_id for h in res.hits] == ids(shop, sort="price_asc")[:8]
    assert [h.item_id for h in res.hits][req.page_slice()] == ids(shop, sort="price_asc")[3:6]


# ---------------------------------------------------------------- autocomplete


def test_suggest_brands_categories_titles(shop: SearchBackend) -> None:
    got = shop.suggest("ni", size=10)
    assert got[0].text == "Nike" and got[0].kind == "brand"
    assert got[0].count == sum(i.brand == "Nike" for i in ACTIVE)
    assert {s.text for s in got if s.kind == "title"} == {
        "Nike Air 運動鞋",
        "Nike Red Running Shorts",
    }
    kinds = [s.kind for s in got]
    assert kinds == sorted(kinds, key=["brand", "category", "title"].index)


def test_suggest_chinese_either_script(shop: SearchBackend) -> None:
    for prefix in ("連衣", "连衣"):
        got = shop.suggest(prefix)
        assert got[0].text == "連衣裙" and got[0].kind == "category"
        assert got[0].count == sum(i.category[-1] == "連衣裙" for i in ACTIVE)
    assert [s.text for s in shop.suggest("紅色")] == ["紅色碎花連衣裙 夏季", "紅色純棉T恤"]


def test_suggest_limits_and_skips_inactive(shop: SearchBackend) -> None:
    assert len(shop.suggest("r", size=2)) == 2
    assert "Red Dress Discontinued" not in {s.text for s in shop.suggest("red", size=50)}
    assert shop.suggest("") == [] and shop.suggest("   ") == []
    assert shop.suggest("zzzz") == []


# ---------------------------------------------------------------- request validation


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
        ({"size": 101}, "size"),
        ({"facets": ["colour"]}, "facets"),
        ({"filters": [{"field": "colour", "values": ["red"]}]}, "field"),
        ({"sort": "cheapest"}, "sort"),
        ({"filters": [{"field": "price"}]}, "filters"),
        ({"page": 500, "size": 100}, "page"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_requests_name_the_field(bad: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        SearchRequest(**bad)  # type: ignore[arg-type]
    assert field in str(e.value)


def test_range_filter_reference_semantics() -> None:
    f = RangeFilter(field="price", gt=10, lte=20)
    assert [f.contains(x) for x in (10, 10.5, 20, 20.5)] == [False, True, True, False]
    assert isinstance(ITEMS["d1"], Item)
