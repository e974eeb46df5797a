from __future__ import annotations

from pathlib import Path

from data.catalog import Catalog
from data.models import Item


def _item(i: str, cat: str, stock: int = 5, active: bool = True) -> Item:
    return Item(item_id=i, title=f"商品 {i}", category=cat, price=10, stock=stock, is_active=active)


def test_catalog_upsert_delete_categories_and_round_trip(tmp_path: Path) -> None:
    c = Catalog([_item("a", "服裝 > 女裝 > 連衣裙"), _item("b", "服裝 > 男裝"), _item("c", "手機", stock=0)])
    assert c.items_in_category(("服裝",)) == {"a", "b"}
    assert c.is_recommendable("a") and not c.is_recommendable("c") and not c.is_recommendable("zz")
    c.upsert([_item("a", "手機")])  # moved category
    assert c.items_in_category(("服裝",)) == {"b"} and c.in_category("a", ("手機",))
    assert c.delete(["b", "missing"]) == 1 and "b" not in c
    c.save(tmp_path / "items.jsonl")
    again = Catalog.from_jsonl(tmp_path / "items.jsonl")
    assert {i.item_id for i in again} == {"a", "c"}
    assert again.get("a") == c.get("a")
