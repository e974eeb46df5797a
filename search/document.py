"""What a backend indexes for one item: the same fields, already analysed, for every backend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from data.models import CATEGORY_SEPARATOR, Item
from data.text import category_key, char_tokens, tokens

MAX_CATEGORY_LEVELS = 3
POSITION_GAP = 100
"""Token positions between the values of a multi-valued text field (no phrase spans two)."""


@dataclass(frozen=True)
class SearchDocument:
    item_id: str
    # text fields, pre-tokenized (one token list per value)
    title: tuple[tuple[str, ...], ...]
    meta: tuple[tuple[str, ...], ...]
    """Brand, category names and tags: one token list each."""
    description: tuple[tuple[str, ...], ...]
    title_chars: tuple[str, ...]
    """Every CJK character of the title alone (one-character query words match here)."""
    meta_chars: tuple[str, ...]
    """Every CJK character of brand, category names and tags alone."""
    category_names: tuple[str, ...]
    """`data.text.category_key` of each category level (query words naming one)."""
    # keyword fields, original script
    category_l1: str | None
    category_l2: str | None
    category_l3: str | None
    category: tuple[str, ...]
    """Every path prefix (``服裝``, ``服裝 > 女裝``, …): a `category` filter value matches one."""
    brand: str | None
    tags: tuple[str, ...]
    merchant_id: str | None
    # numbers
    price: float
    stock: int
    in_stock: bool
    is_active: bool
    rating: float | None
    created_at: datetime
    popularity: float
    # stored for rendering
    title_raw: str
    category_path: tuple[str, ...]
    currency: str


def category_prefixes(path: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(CATEGORY_SEPARATOR.join(path[: i + 1]) for i in range(len(path)))


def to_document(item: Item, popularity: float = 0.0) -> SearchDocument:
    cat = item.category

    def level(i: int) -> str | None:
        return cat[i] if len(cat) > i else None

    meta_values = [v for v in (item.brand, *cat, *item.tags) if v]
    return SearchDocument(
        item_id=item.item_id,
        title=(tuple(tokens(item.title)),),
        meta=tuple(t for t in (tuple(tokens(v)) for v in meta_values) if t),
        description=(tuple(tokens(item.description)),) if item.description else (),
        title_chars=tuple(char_tokens(item.title)),
        meta_chars=tuple(c for v in meta_values for c in char_tokens(v)),
        category_names=tuple(k for k in dict.fromkeys(category_key(c) for c in cat) if k),
        category_l1=level(0),
        category_l2=level(1),
        category_l3=level(2),
        category=category_prefixes(cat),
        brand=item.brand,
        tags=tuple(dict.fromkeys(item.tags)),
        merchant_id=item.merchant_id,
        price=float(item.price),
        stock=item.stock,
        in_stock=item.stock > 0,
        is_active=item.is_active,
        rating=item.rating,
        created_at=item.created_at,
        popularity=float(popularity),
        title_raw=item.title,
        category_path=cat,
        currency=item.currency,
    )
