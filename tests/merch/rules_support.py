"""What the rule tests share: a small catalog's items, ranked lists, rule specs and contexts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from data.models import Item
from merch.rules import RuleSpec
from ranking.types import RankContext, ScoredItem

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)


def make_item(
    i: str,
    brand: str,
    cat: str,
    price: float = 100,
    tags: str = "",
    days_old: int = 100,
    stock: int = 5,
) -> Item:
    return Item(
        item_id=i,
        title=f"商品 {i}",
        brand=brand,
        category=cat,
        price=price,
        tags=tags,
        stock=stock,
        created_at=NOW - timedelta(days=days_old),
    )


def ranked(*ids: str) -> list[ScoredItem]:
    return [ScoredItem(item_id=i, score=float(len(ids) - n)) for n, i in enumerate(ids)]


def rule(**kw: object) -> RuleSpec:
    base: dict[str, object] = {"name": "r", "actions": []}
    base.update(kw)
    return RuleSpec.model_validate(base)


def ids(items: list[ScoredItem]) -> list[str]:
    return [s.item_id for s in items]


def feed(**kw: object) -> RankContext:
    return RankContext(surface="feed", now=NOW, **kw)  # type: ignore[arg-type]


def search(q: str, **kw: object) -> RankContext:
    return RankContext(surface="search", query=q, now=NOW, **kw)  # type: ignore[arg-type]


PIN_X1 = {"type": "pin", "pins": [{"item_id": "x", "position": 1}]}
PIN_A1 = {"type": "pin", "pins": [{"item_id": "a", "position": 1}]}
