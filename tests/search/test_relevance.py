"""Relevance on the synthetic shop: labeled queries, NDCG@10, matching items first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from data.loaders import iter_items
from data.models import Item
from data.synthetic import ShopSpec, generate
from search.analysis import Analyzer
from search.backend import SearchBackend
from search.query import SearchRequest
from search.relevance import GROUPS, Intent, evaluate, make_queries, ndcg_at_k, typo
from tests.search.conftest import BACKENDS, _factory


@pytest.fixture(scope="module")
def shop_items(tmp_path_factory: pytest.TempPathFactory) -> list[Item]:
    out = tmp_path_factory.mktemp("synthetic")
    generate(ShopSpec(n_users=30, n_items=2500, n_events=400, seed=3), out, progress=False)
    return list(iter_items(out / "items.jsonl"))


@pytest.fixture(scope="module", params=BACKENDS)
def synthetic(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shop_items: list[Item]
) -> Iterator[SearchBackend]:
    analyzer = Analyzer.from_file(None)  # the default synonyms file, as shipped
    make, made = _factory(request.param, request, tmp_path_factory.mktemp("idx"), analyzer)
    b = make()
    b.rebuild(shop_items)
    yield b
    for x in made:
        x.close()


def test_ndcg_known_values() -> None:
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}) < 1.0
    assert ndcg_at_k(["x"], {"a": 1}) == 0.0
    assert ndcg_at_k(["x"], {}) == 0.0


def test_typo_makes_one_edit() -> None:
    import random

    from data.text import edit_distance

    rng = random.Random(1)
    for _ in range(20):
        t = typo("red dress", rng)
        assert t != "red dress" and edit_distance(t, "red dress") == 1


def test_queries_cover_groups_and_are_labeled_from_fields(shop_items: list[Item]) -> None:
    qs = make_queries(shop_items, 60, seed=1)
    assert {q.group for q in qs} == set(GROUPS)
    by_id = {i.item_id: i for i in shop_items}
    for q in qs:
        assert q.relevant, q.text
        assert any(g == 2 for g in q.relevant.values())
        for item_id, g in q.relevant.items():
            assert g == q.intent.grade(by_id[item_id]) and by_id[item_id].is_active


@pytest.mark.parametrize("text", ["連衣裙 紅色", "红色连衣裙", "red dress"])
def test_red_dress_puts_red_dresses_first(
    synthetic: SearchBackend, shop_items: list[Item], text: str
) -> None:
    intent = Intent("連衣裙", variant="red")
    want = sum(1 for i in shop_items if i.is_active and intent.grade(i) == 2)
    assert want >= 3
    by_id = {i.item_id: i for i in shop_items}
    hits = synthetic.search(SearchRequest(text=text, size=min(want, 10))).hits
    assert [intent.grade(by_id[h.item_id]) for h in hits] == [2] * len(hits)


@pytest.mark.parametrize(
    "text", ["yellow phone", "黃色 手機", "黄色手机", "purple phone", "手機 綠色"]
)
def test_colour_phone_puts_phones_before_phone_cases(
    synthetic: SearchBackend, shop_items: list[Item], text: str
) -> None:
    # Phone-case titles ("黃色迷你手機殼 Yellow Mini Phone Case") have every word of these
    # queries and are one token shorter than phone titles; the phones' category is named 手機.
    colour = {
        "yellow": "yellow",
        "黃色": "yellow",
        "黄色": "yellow",
        "purple": "purple",
        "綠色": "green",
    }
    intent = Intent("智慧型手機", variant=next(v for k, v in colour.items() if k in text))
    want = sum(1 for i in shop_items if i.is_active and intent.grade(i) == 2)
    assert want >= 3
    by_id = {i.item_id: i for i in shop_items}
    hits = synthetic.search(SearchRequest(text=text, size=min(want, 10))).hits
    assert [intent.grade(by_id[h.item_id]) for h in hits] == [2] * len(hits)


def test_one_character_finds_every_category_with_it(
    synthetic: SearchBackend, shop_items: list[Item]
) -> None:
    by_id = {i.item_id: i for i in shop_items}
    hits = synthetic.search(SearchRequest(text="裙", size=100)).hits
    assert {by_id[h.item_id].category[-1] for h in hits} == {"連衣裙", "半身裙"}
    res = synthetic.search(SearchRequest(text="紅色裙", size=100))
    want = [i for i in shop_items if i.is_active and i.category[-1] in ("連衣裙", "半身裙")
            and i.attributes.get("colour") == "red"]
    assert res.total == len(want) > 0
    assert {h.item_id for h in res.hits} == {i.item_id for i in want}


def test_ndcg_is_high(synthetic: SearchBackend, shop_items: list[Item]) -> None:
    report = evaluate(synthetic, make_queries(shop_items, 100, seed=2))
    assert report.n_queries == 100
    assert report.ndcg >= 0.85, report
    assert min(report.by_group.values()) >= 0.75, report.by_group


@pytest.mark.opensearch
def test_backends_agree_on_relevance(
    opensearch_url: str, tmp_path: Path, shop_items: list[Item]
) -> None:
    from search.opensearch_backend import OpenSearchBackend
    from search.tantivy_backend import TantivyBackend

    analyzer = Analyzer.from_file(None)
    emb = TantivyBackend(tmp_path / "idx", analyzer=analyzer)
    osb = OpenSearchBackend(opensearch_url, index="shoprank-test-agree", analyzer=analyzer)
    try:
        emb.rebuild(shop_items)
        osb.rebuild(shop_items)
        qs = make_queries(shop_items, 100, seed=4)
        a, b = evaluate(emb, qs), evaluate(osb, qs)
        assert abs(a.ndcg - b.ndcg) <= 0.03 * max(a.ndcg, b.ndcg), (a, b)
        # exact queries: the same top hits as sets
        for q in qs[:30]:
            ha = {h.item_id for h in emb.search(SearchRequest(text=q.text, size=100)).hits}
            hb = {h.item_id for h in osb.search(SearchRequest(text=q.text, size=100)).hits}
            assert ha == hb, q.text
    finally:
        emb.close()
        osb.close()
