"""Contract tests that write: upserts, deletes, partial updates, rebuild while searching."""

from __future__ import annotations

import threading
import time

import pytest

from data.models import Item
from search.query import SearchRequest
from tests.search import catalog
from tests.search.conftest import BackendFactory

ITEMS = catalog.items()
ACTIVE = [i for i in ITEMS if i.is_active]


def _ids(b: object, **kw: object) -> list[str]:
    return [h.item_id for h in b.search(SearchRequest(size=100, **kw)).hits]  # type: ignore[attr-defined, arg-type]


def test_index_then_count_and_health(new_backend: BackendFactory) -> None:
    b = new_backend()
    assert b.index_items(ITEMS, popularity=catalog.popularity()) == len(ITEMS)
    assert b.count() == len(ITEMS)
    assert b.health()
    # indexing the same items again replaces them
    b.index_items(ITEMS[:5])
    assert b.count() == len(ITEMS)


def test_progress_is_reported(new_backend: BackendFactory) -> None:
    seen: list[int] = []
    b = new_backend()
    b.index_items(ITEMS, progress=seen.append)
    assert sum(seen) == len(ITEMS)


def test_upsert_adds_and_replaces(new_backend: BackendFactory) -> None:
    b = new_backend()
    b.index_items(ITEMS, popularity=catalog.popularity())
    new = Item(
        item_id="n1",
        title="綠色連衣裙",
        category="服裝 > 女裝 > 連衣裙",
        brand="Zara",
        price=188,
        stock=3,
    )
    changed = ITEMS[1].model_copy(update={"title": "Crimson Evening Gown"})
    assert b.upsert([new, changed]) == 2
    assert _ids(b, text="绿色连衣裙") == ["n1"]
    assert _ids(b, text="crimson gown") == [changed.item_id]
    assert changed.item_id not in _ids(b, text="red")
    # popularity kept when not given
    hit = b.search(SearchRequest(text="crimson")).hits[0]
    assert hit.popularity == catalog.popularity()[changed.item_id]
    assert b.count() == len(ITEMS) + 1


def test_typos_find_words_added_after_earlier_searches(new_backend: BackendFactory) -> None:
    b = new_backend()
    b.index_items(ITEMS)
    assert _ids(b, text="gadgett") == []  # typo searches before the word exists
    assert set(_ids(b, text="sneekers")) == {"s2"}
    gadget = Item(
        item_id="g1", title="Pocket Gadget", category="電子 > 配件", brand="Acme", price=10
    )
    b.upsert([gadget])
    assert _ids(b, text="gadgett") == ["g1"]
    assert _ids(b, text="gadgett", typo_tolerance=False) == []
    b.update_fields("g1", price=12)  # terms unchanged
    assert _ids(b, text="gadgett") == ["g1"]
    b.delete(["g1"])
    assert _ids(b, text="gadgett") == []


def test_embedded_reader_sees_another_writers_new_words(tmp_path: object) -> None:
    from pathlib import Path

    from search.tantivy_backend import TantivyBackend

    root = Path(str(tmp_path)) / "idx"
    writer, reader = TantivyBackend(root), TantivyBackend(root)  # as two processes would
    try:
        writer.index_items(ITEMS)
        assert _ids(reader, text="gadgett") == []
        writer.upsert([Item(item_id="g1", title="Pocket Gadget", category="電子 > 配件", price=10)])
        # tantivy reloads another writer's commit shortly after it lands: wait for the item
        deadline = time.monotonic() + 10
        while _ids(reader, text="pocket gadget") != ["g1"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _ids(reader, text="pocket gadget") == ["g1"]
        assert _ids(reader, text="gadgett") == ["g1"]  # its fuzzy vocabulary followed
    finally:
        writer.close()
        reader.close()


def test_delete(new_backend: BackendFactory) -> None:
    b = new_backend()
    b.index_items(ITEMS)
    assert b.delete(["d2", "d5", "nope"]) == 2
    assert set(_ids(b, text="red dress")) == {"d1"}
    assert b.count() == len(ITEMS) - 2
    assert b.delete(["nope"]) == 0
    res = b.search(SearchRequest(facets=["brand"]))
    assert {v.value: v.count for v in res.facets["brand"]}["Zara"] == 1  # d3 only


def test_partial_updates(new_backend: BackendFactory) -> None:
    b = new_backend()
    b.index_items(ITEMS, popularity=catalog.popularity())
    assert b.update_fields("d3", price=50.0)
    assert "d3" in _ids(b, filters=[{"field": "price", "lt": 60}])
    hit = next(h for h in b.search(SearchRequest(text="藍色連衣裙")).hits if h.item_id == "d3")
    assert (hit.price, hit.title) == (50.0, "藍色連衣裙")
    assert b.update_fields("d3", stock=0)
    assert "d3" in _ids(b, filters=[{"field": "in_stock", "value": False}])
    assert b.update_fields("d3", popularity=1000.0)
    assert _ids(b, sort="popularity")[0] == "d3"
    assert b.update_fields("d3", is_active=False)
    assert "d3" not in _ids(b)
    assert b.update_fields("missing", price=1.0) is False


def _price_counts(b: object, text: str = "dress") -> dict[str, int]:
    res = b.search(SearchRequest(text=text, facets=["price", "brand"],  # type: ignore[attr-defined]
                                 filters=[{"field": "brand", "values": ["Zara", "H&M"]}]))
    return {v.value: v.count for v in res.facets["price"]} | {"total": res.total}


def test_facet_counts_follow_every_write(new_backend: BackendFactory) -> None:
    b = new_backend()
    b.index_items(ITEMS)
    before = _price_counts(b)
    assert _price_counts(b) == before  # asked twice: the same
    assert b.update_fields("d2", price=50.0)  # Zara dress 299 → 50
    after = _price_counts(b)
    assert after["*-100"] == before["*-100"] + 1 and after["200-500"] == before["200-500"] - 1
    b.upsert(
        [
            Item(
                item_id="n2",
                title="Zara Linen Dress",
                category="服裝 > 女裝 > 連衣裙",
                brand="Zara",
                price=20,
            )
        ]
    )
    assert _price_counts(b)["*-100"] == after["*-100"] + 1
    assert _price_counts(b)["total"] == after["total"] + 1
    b.delete(["n2", "d2"])
    assert _price_counts(b)["*-100"] == before["*-100"]


def test_embedded_reader_sees_another_writers_price_change(tmp_path: object) -> None:
    from pathlib import Path

    from search.tantivy_backend import TantivyBackend

    root = Path(str(tmp_path)) / "idx"
    writer, reader = TantivyBackend(root), TantivyBackend(root)  # as two processes would
    try:
        writer.index_items(ITEMS)
        before = _price_counts(reader)
        assert writer.update_fields("d2", price=50.0)
        after = _price_counts(reader)  # no wait: the reader checks the index's commit file
        assert after["*-100"] == before["*-100"] + 1
    finally:
        writer.close()
        reader.close()


def test_rebuild_replaces_everything(new_backend: BackendFactory) -> None:
    b = new_backend()
    b.index_items(ITEMS)
    assert b.rebuild(ITEMS[:10]) == 10
    assert b.count() == 10
    assert "p3" not in _ids(b)


def test_reindex_while_searching_never_fails_or_empties(new_backend: BackendFactory) -> None:
    b = new_backend()
    b.rebuild(ITEMS, popularity=catalog.popularity())
    stop = threading.Event()
    errors: list[BaseException] = []
    totals: list[int] = []

    def searcher() -> None:
        while not stop.is_set():
            try:
                res = b.search(SearchRequest(text="red dress", facets=["brand"]))
                totals.append(res.total)
                if not res.hits:
                    errors.append(AssertionError("empty result during rebuild"))
            except BaseException as exc:  # noqa: BLE001 - any failure is the test's finding
                errors.append(exc)

    t = threading.Thread(target=searcher)
    t.start()
    try:
        for _ in range(4):
            b.rebuild(ITEMS, popularity=catalog.popularity())
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors, errors[:3]
    assert len(totals) > 0
    assert set(totals) == {3}


def test_search_before_any_index_is_a_clear_error_or_empty(new_backend: BackendFactory) -> None:
    b = new_backend()
    try:
        res = b.search(SearchRequest(text="red"))
    except Exception as exc:  # noqa: BLE001
        from core.errors import ShopRankError

        assert isinstance(exc, ShopRankError)
        assert "index" in str(exc)
    else:
        assert res.total == 0
    assert b.count() == 0


@pytest.mark.parametrize("n", [0])
def test_empty_upsert_and_delete_are_noops(new_backend: BackendFactory, n: int) -> None:
    b = new_backend()
    b.index_items(ITEMS)
    assert b.upsert([]) == n
    assert b.delete([]) == n
    assert b.count() == len(ITEMS)
