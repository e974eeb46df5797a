from __future__ import annotations

import heapq
import random
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from data.catalog import Catalog
from data.catalog_rows import is_promoted
from data.models import Item
from merch.rules.engine import item_matches
from merch.rules.model import ItemFilter
from merch.rules.spec import RuleSpec
from merch.rules.validate import rule_warnings
from ranking.catalog_index import CatalogIndex
from ranking.catalog_views import CatalogViews

T0 = datetime(2025, 1, 1, tzinfo=UTC)
TAIPEI = timezone(timedelta(hours=8))


def _item(i: str, cat: str, stock: int = 5, active: bool = True) -> Item:
    return Item(item_id=i, title=f"商品 {i}", category=cat, price=10, stock=stock, is_active=active)


def _rich(k: int, rng: random.Random) -> Item:
    """An item using every field, with awkward values (None, unicode, microseconds, tz)."""
    return Item(
        item_id=f"i{k}",
        title=f"綠色積木 Blocks {k} “quoted” \\ back",
        description="" if k % 5 == 0 else f"說明 {k}\n第二行 with \t tab",
        category=["母嬰", "玩具", f"積木{k % 7}"] if k % 11 else [],
        brand=None if k % 4 == 0 else f"Brand{k % 9}",
        price=rng.choice([0.0, 899.0, 12.345, 1e9, 0.1 + 0.2]),
        currency=rng.choice(["CNY", "TWD", "USD"]),
        tags=("promoted", "新品") if k % 6 == 0 else (() if k % 2 else ("限時",)),
        attributes={"colour": "green", "size": k, "weight": k / 3, "gift": k % 2 == 0, "x": 1.0},
        stock=rng.choice([0, 1, 60, 2**31 - 1]),
        is_active=k % 10 != 3,
        created_at=datetime(2026, 3, 26, 15, 46, 10, k % 1_000_000, tzinfo=TAIPEI)
        - timedelta(hours=k),
        merchant_id=None if k % 3 else f"m{k}",
        rating=None if k % 3 == 1 else rng.choice([0.0, 3.5, 5.0, 4.123456789]),
    )


def _rich_items(n: int, seed: int = 1) -> list[Item]:
    rng = random.Random(seed)
    return [_rich(k, rng) for k in range(n)]


def _same(a: Item | None, b: Item) -> None:
    assert a is not None
    assert a == b
    assert a.model_dump() == b.model_dump()
    assert a.created_at.utcoffset() == timedelta(0) and a.created_at == b.created_at
    assert type(a.category) is tuple and type(a.tags) is tuple
    types = {k: type(v) for k, v in a.attributes.items()}
    assert types == {k: type(v) for k, v in b.attributes.items()}


def test_catalog_upsert_delete_categories_and_round_trip(tmp_path: Path) -> None:
    c = Catalog(
        [_item("a", "服裝 > 女裝 > 連衣裙"), _item("b", "服裝 > 男裝"), _item("c", "手機", stock=0)]
    )
    assert c.items_in_category(("服裝",)) == {"a", "b"}
    assert c.is_recommendable("a") and not c.is_recommendable("c") and not c.is_recommendable("zz")
    c.upsert([_item("a", "手機")])  # moved category
    assert c.items_in_category(("服裝",)) == {"b"} and c.in_category("a", ("手機",))
    assert c.delete(["b", "missing"]) == 1 and "b" not in c
    assert c.categories() == [("手機",)]
    c.save(tmp_path / "items.jsonl")
    again = Catalog.from_jsonl(tmp_path / "items.jsonl")
    assert {i.item_id for i in again} == {"a", "c"}
    assert again.get("a") == c.get("a")


def test_every_field_survives_get_iter_save_and_load(tmp_path: Path) -> None:
    items = _rich_items(300)  # past the size where the catalog learns its compression dictionary
    c = Catalog(items[:10])
    c.upsert(items[10:])
    assert len(c) == 300 and [i.item_id for i in c] == [i.item_id for i in items]
    for it in items:
        _same(c.get(it.item_id), it)
    assert items[4].rating is None and c.get("i4").rating is None  # type: ignore[union-attr]
    assert c.get("i1").created_at.tzinfo == UTC  # type: ignore[union-attr]
    c.save(tmp_path / "items.jsonl")
    again = Catalog.from_jsonl(tmp_path / "items.jsonl")
    for a, b in zip(again, items, strict=True):
        _same(a, b)


def test_loaded_lines_in_any_form_decode_to_the_validated_item(tmp_path: Path) -> None:
    lines = [
        '{"item_id": "a", "title": " 連衣裙 ", "price": 10, "category": "服裝 / 女裝", '
        '"tags": "x, y", "created_at": "2025-01-01T08:00:00+08:00", "rating": null}',
        '{"item_id":"b","title":"no date","price":1.5}',  # created_at defaults to "now"
    ]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    c = Catalog.from_jsonl(tmp_path / "items.jsonl")
    c.hot_items = 0  # every get decodes again
    assert c.get("a") == Item.model_validate_json(lines[0])
    a = c.get("a")
    assert a is not None and a.category == ("服裝", "女裝") and a.created_at == T0
    b, again = c.get("b"), c.get("b")
    assert b is not None and again is not None and b is not again
    assert b.created_at == again.created_at == list(c)[1].created_at  # fixed once, at load


def test_equal_but_differently_typed_values_stay_apart() -> None:
    values: list[object] = [1, True, 1.0, 0.0, -0.0, "1", 2**53, -1e15]
    items = [Item(item_id=f"a{k}", title="t", price=1, attributes={"v": v}, stock=2**31 - 1 - k)
             for k, v in enumerate(values)]
    c = Catalog(items, hot_items=0)
    for it, v in zip(items, values, strict=True):
        got = c.get(it.item_id)
        assert got is not None and type(got.attributes["v"]) is type(v)
        assert repr(got.attributes["v"]) == repr(v) and got.stock == it.stock


def test_upsert_replaces_in_place_and_delete_forgets(tmp_path: Path) -> None:
    items = _rich_items(200)
    c = Catalog(items)
    changed = items[7].model_copy(update={"title": "new title", "rating": None, "tags": ()})
    c.upsert([changed])
    _same(c.get("i7"), changed)
    assert [i.item_id for i in c][:9] == [f"i{k}" for k in range(9)]  # kept its place
    assert c.delete(["i7", "i7"]) == 1
    assert c.get("i7") is None and "i7" not in c and len(c) == 199
    c.upsert([items[7]])  # back, at the end
    assert [i.item_id for i in c][-1] == "i7"
    _same(c.get("i7"), items[7])


def test_many_deletes_compact_without_losing_items() -> None:
    items = [Item(item_id=f"d{k}", title=f"t{k}", price=k, brand=f"b{k % 3}", stock=k % 2,
                  category=f"c{k % 4} > x") for k in range(3000)]
    c = Catalog(items)
    gone = [f"d{k}" for k in range(3000) if k % 4]
    assert c.delete(gone) == len(gone)
    kept = [it for k, it in enumerate(items) if k % 4 == 0]
    assert len(c) == len(kept) and c.ids() == [it.item_id for it in kept]
    for it in kept:
        assert c.get(it.item_id) == it
        assert c.is_recommendable(it.item_id) == (it.stock > 0)
        assert c.category_group(it.item_id) == it.category_path
    assert all(c.get(i) is None and not c.is_recommendable(i) for i in gone[:50])
    assert c.brands() == {"b0", "b1", "b2"}
    assert c.items_in_category(("c0",)) == {it.item_id for it in kept}


def test_hot_cache_is_bounded_and_never_stale() -> None:
    items = _rich_items(120)
    c = Catalog(items, hot_items=8)
    for it in items:
        assert c.get(it.item_id) == it
        assert c.hot_count <= 8
    assert c.hot_count == 8
    first = c.get("i119")
    assert c.get("i119") is first  # a hit returns the cached object
    newer = items[119].model_copy(update={"price": 1.5, "stock": 0})
    c.upsert([newer])
    got = c.get("i119")
    assert got == newer and got is not first and not c.is_recommendable("i119")
    c.delete(["i119"])
    assert c.get("i119") is None
    assert Catalog(items[:5], hot_items=0).get("i3") == items[3]


def test_brands_follow_upserts_and_deletes() -> None:
    c = Catalog([Item(item_id="a", title="a", price=1, brand="Acme"),
                 Item(item_id="b", title="b", price=1, brand="Acme"),
                 Item(item_id="c", title="c", price=1)])
    assert c.brands() == {"Acme"}
    c.upsert([Item(item_id="a", title="a", price=1, brand="Bolt")])
    assert c.brands() == {"Acme", "Bolt"}
    c.delete(["b"])
    assert c.brands() == {"Bolt"}
    c.upsert([Item(item_id="a", title="a", price=1)])
    assert c.brands() == frozenset()
    spec = RuleSpec.model_validate(
        {"name": "r", "actions": [{"type": "boost", "filter": {"brands": ["bolt"]}, "weight": 1}]}
    )
    assert any("no item has brand 'bolt'" in w for w in rule_warnings(spec.to_rule(), c))
    c.upsert([Item(item_id="z", title="z", price=1, brand="BOLT")])
    assert not rule_warnings(spec.to_rule(), c)  # brands match case-insensitively


def _expected_views(items: list[Item], depth: int) -> tuple[list[str], list[str], list[str]]:
    """The orderings as defined over decoded items (the reference the columns must match)."""
    ok = [it for it in items if it.is_active and it.stock > 0]
    newest = [it.item_id for it in heapq.nlargest(depth, ok, key=lambda it: it.created_at)]
    promoted = [it.item_id for it in ok if is_promoted(it)][:depth]
    best = heapq.nlargest(depth, ok, key=lambda it: (it.rating or 0.0, it.item_id))
    rated = [it.item_id for it in best]
    return newest, promoted, rated


def _tied_items(n: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    return [
        Item(item_id=f"v{rng.randrange(10**6)}-{k}", title="t", price=1,
             stock=rng.choice([0, 3]), is_active=rng.random() > 0.1,
             created_at=T0 + timedelta(days=rng.randrange(20)),  # many ties
             rating=rng.choice([None, 0.0, 4.5, 5.0, 3.25]),
             tags=("promoted",) if rng.random() < 0.2 else (),
             attributes={"promoted": True} if rng.random() < 0.1 else {"promoted": "yes"})
        for k in range(n)
    ]


def test_views_match_the_item_orderings_after_upserts_and_deletes() -> None:
    items = _tied_items(400, seed=3)
    c = Catalog(items)
    views = CatalogViews(c, ttl=3600, depth=25)
    assert (views.newest(), views.promoted(), views.best_rated()) == _expected_views(list(c), 25)
    # changes are seen after invalidate (and only then: the views are cached)
    top = views.newest()[0]
    c.delete([top])
    assert views.newest()[0] == top
    extra = _tied_items(50, seed=4)
    c.upsert(extra)
    c.upsert([it.model_copy(update={"stock": 0}) for it in items[:30]])
    views.invalidate()
    assert (views.newest(), views.promoted(), views.best_rated()) == _expected_views(list(c), 25)
    assert top not in views.newest()
    small = CatalogViews(Catalog(items[:10]), depth=25)
    assert small.best_rated() == _expected_views(items[:10], 25)[2]
    assert CatalogViews(Catalog()).newest() == []


def test_index_facts_follow_upserts_and_deletes() -> None:
    c = Catalog([_item("a", "服裝 > 女裝"), _item("b", "手機", stock=0), _item("n", "")])
    idx = CatalogIndex(c)
    assert idx.recommendable("a") and not idx.recommendable("b") and not idx.recommendable("zz")
    assert idx.group("a") == "服裝 > 女裝" and idx.group("n") is None and idx.group("zz") is None
    assert idx.keep("a", set(), ("服裝",)) and not idx.keep("a", {"a"}, None)
    assert not idx.keep("a", set(), ("手機",)) and not idx.keep("b", set(), None)
    c.upsert([_item("b", "服裝 > 男裝"), _item("a", "手機", active=False)])
    c.delete(["n"])
    idx.refresh(["a", "b", "n"])
    assert idx.keep("b", set(), ("服裝",)) and idx.in_category("b", ("服裝", "男裝"))
    assert not idx.recommendable("a") and idx.group("a") == "手機"
    assert idx.group("n") is None and not idx.in_category("n", ())


def test_facts_match_the_items_without_decoding() -> None:
    items = _rich_items(150)
    c = Catalog(items, hot_items=0)
    c.upsert([items[9].model_copy(update={"tags": ("a", "b"), "price": 7.25, "rating": None})])
    c.delete(["i8"])
    expect = {it.item_id: it for it in items}
    expect["i9"] = c.get("i9")  # type: ignore[assignment]
    del expect["i8"]
    for it in expect.values():
        f = c.facts(it.item_id)
        assert f is not None
        got = (f.category, f.brand, f.tags, f.price, f.is_active, f.created_at, f.rating)
        assert got == (it.category, it.brand, it.tags, it.price, it.is_active, it.created_at,
                       it.rating)
        assert f.in_stock == it.in_stock
        assert f.stock == it.stock and f.category_path == it.category_path
        assert f.created_at.utcoffset() == timedelta(0)
    assert c.facts("i9").tags == ("a", "b") and c.facts("i8") is None  # type: ignore[union-attr]
    assert c.hot_count == 0


def test_facts_answer_rule_filters_as_the_items_do() -> None:
    items = _rich_items(120)
    c = Catalog(items)
    now = datetime(2026, 3, 27, tzinfo=UTC)
    filters = [
        ItemFilter(brands=("brand1", "Brand2")),
        ItemFilter(categories=(("母嬰", "玩具", "積木3"),)),
        ItemFilter(tags=("promoted",)),
        ItemFilter(price_min=10, price_max=1000),
        ItemFilter(new_arrival_days=2),
        ItemFilter(in_stock=True),
        ItemFilter(in_stock=False),
        ItemFilter(item_ids=("i1", "i2"), brands=("Brand1",)),
    ]
    hits = 0
    for f in filters:
        for it in items:
            want = item_matches(f, it.item_id, it, now)
            facts = c.facts(it.item_id)
            assert item_matches(f, it.item_id, facts, now) == want  # type: ignore[arg-type]
            hits += want
    assert 0 < hits < len(filters) * len(items)


def test_category_and_brand_match_the_items() -> None:
    items = _rich_items(150)
    c = Catalog(items)
    c.delete(["i5"])
    c.upsert([items[6].model_copy(update={"brand": None, "category": ("新", "類")})])
    for it in [*items[:5], *items[7:]]:
        assert c.category_and_brand(it.item_id) == (" > ".join(it.category), it.brand)
    assert c.category_and_brand("i6") == ("新 > 類", None)
    assert c.category_and_brand("i5") == (None, None) and c.category_and_brand("i0")[0] == ""


def _versioned(i: str, v: int) -> Item:
    """Every field derived from `v`: a reader can tell a whole item from a mixed one."""
    return Item(item_id=i, title=f"title v{v}", description=f"d{v}" * (v % 40), price=float(v),
                category=["c", f"v{v}"], brand=f"b{v}", tags=(f"t{v}",), attributes={"v": v},
                stock=v, is_active=v % 2 == 0, created_at=T0 + timedelta(seconds=v),
                rating=None if v % 3 == 0 else (v % 50) / 10)


def _check_whole(it: Item) -> None:
    v = it.stock
    assert it == _versioned(it.item_id, v)


def test_readers_never_see_a_half_written_item() -> None:
    ids = [f"x{k}" for k in range(20)]
    c = Catalog([_versioned(i, 0) for i in ids] + _rich_items(100), hot_items=8)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def write() -> None:
        try:
            for v in range(1, 400):
                c.upsert([_versioned(i, v) for i in ids[v % 3::3]])
                if v % 7 == 0:
                    c.delete(ids[:2])
                    c.upsert([_versioned(i, v) for i in ids[:2]])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            stop.set()

    def read(seed: int) -> None:
        rng = random.Random(seed)
        n = 0
        try:
            while not stop.is_set() or n < 200:
                i = rng.choice(ids)
                it = c.get(i)
                if it is not None:  # None only while an item is deleted and re-added
                    _check_whole(it)
                    n += 1
                c.is_recommendable(i)
                c.in_category(i, ("c",))
        except BaseException as exc:
            errors.append(exc)
        seen.append(n)

    readers = [threading.Thread(target=read, args=(s,)) for s in range(3)]
    writer = threading.Thread(target=write)
    for t in [*readers, writer]:
        t.start()
    for t in [writer, *readers]:
        t.join(timeout=60)
    assert not errors, errors[0]
    assert len(seen) == 3 and min(seen) >= 200
    for i in ids:
        _check_whole(c.get(i))  # type: ignore[arg-type]
    assert c.get("x0").stock == 399 - 399 % 3  # type: ignore[union-attr]


def test_card_matches_the_items_display_fields() -> None:
    items = [
        Item(
            item_id=f"c{i}",
            title=f"標題 {i} title",
            price=10.5 + i,
            currency="TWD" if i % 2 else "CNY",
            brand=None if i % 3 == 0 else f"b{i % 4}",
            category=("服裝", f"c{i % 3}"),
            stock=i % 2,
        )
        for i in range(30)
    ]
    cat = Catalog(items)
    for it in items:
        assert cat.card(it.item_id) == (
            it.title,
            it.brand,
            list(it.category),
            it.price,
            it.currency,
            it.stock > 0,
        )
    cat.upsert([items[1].model_copy(update={"title": "new", "stock": 0})])
    assert cat.card("c1")[0] == "new" and cat.card("c1")[5] is False
    cat.delete(["c2"])
    assert cat.card("c2") is None and cat.card("nope") is None
