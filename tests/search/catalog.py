"""A small fixed shop for the search contract tests: traditional/simplified Chinese and English."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from data.models import Item

SYNONYMS = """\
# test synonyms
手機, 手机, mobile phone, cellphone
連衣裙, dress
紅色, red
藍色, blue
耳機, headphone
"""

_BASE = datetime(2024, 1, 1, tzinfo=UTC)

# item_id, title, category, brand, price, tags, stock, active
_ROWS: list[tuple[str, str, str, str, float, list[str], int, bool]] = [
    ("d1", "紅色碎花連衣裙 夏季", "服裝 > 女裝 > 連衣裙", "優衣庫", 199, ["夏季"], 10, True),
    ("d2", "Red Summer Dress", "服裝 > 女裝 > 連衣裙", "Zara", 299, ["summer"], 5, True),
    ("d3", "藍色連衣裙", "服裝 > 女裝 > 連衣裙", "Zara", 259, [], 3, True),
    ("d4", "Blue Denim Dress", "服裝 > 女裝 > 連衣裙", "Levis", 399, ["denim"], 0, True),
    ("d5", "Red Dresses for Party", "服裝 > 女裝 > 連衣裙", "H&M", 349, ["party"], 7, True),
    ("t1", "紅色純棉T恤", "服裝 > 女裝 > T恤", "優衣庫", 79, ["純棉"], 50, True),
    ("t2", "Red Cotton Tee", "服裝 > 男裝 > T恤", "Nike", 129, ["cotton"], 20, True),
    ("j1", "修身牛仔褲", "服裝 > 男裝 > 牛仔褲", "Levis", 499, ["denim"], 8, True),
    ("j2", "Slim Fit Jeans", "服裝 > 男裝 > 牛仔褲", "Levis", 459, ["denim"], 2, True),
    ("p1", "蘋果 iPhone 15 手機", "電子 > 手機", "Apple", 5999, [], 4, True),
    ("p2", "小米14 智能手机", "電子 > 手機", "小米", 3999, [], 9, True),
    ("p3", "Samsung Galaxy Mobile Phone", "電子 > 手機", "Samsung", 6999, [], 1, True),
    ("p4", "透明手機殼", "電子 > 配件", "Spigen", 99, [], 100, True),
    ("s1", "Nike Air 運動鞋", "鞋 > 運動鞋", "Nike", 699, ["running"], 12, True),
    ("s2", "Running Sneakers", "鞋 > 運動鞋", "Adidas", 599, ["running"], 6, True),
    ("h1", "無線藍牙耳機", "電子 > 耳機", "Sony", 899, ["wireless"], 15, True),
    ("h2", "Noise Cancelling Headphones", "電子 > 耳機", "Sony", 2499, [], 3, True),
    ("k1", "Lenovo Laptop 14 筆記本電腦", "電子 > 電腦", "Lenovo", 6499, [], 5, True),
    ("x1", "Red Dress Discontinued", "服裝 > 女裝 > 連衣裙", "Zara", 159, [], 0, False),
    ("m1", "Nike Red Running Shorts", "服裝 > 男裝 > 短褲", "Nike", 229, ["running"], 11, True),
]


def items() -> list[Item]:
    out = []
    for n, (iid, title, cat, brand, price, tags, stock, active) in enumerate(_ROWS):
        out.append(
            Item(
                item_id=iid,
                title=title,
                description="" if n % 3 else f"{title} — 精選商品 quality product",
                category=cat,
                brand=brand,
                price=price,
                tags=tuple(tags),
                stock=stock,
                is_active=active,
                created_at=_BASE + timedelta(days=n * 3 % 20, hours=n),
                merchant_id=f"m{n % 3}",
                rating=round(3.0 + (n % 5) * 0.45, 2),
            )
        )
    return out


def popularity() -> dict[str, float]:
    """Distinct popularity per item (sort ties would make order backend-dependent)."""
    return {it.item_id: float((i * 7) % 20 + 1) for i, it in enumerate(items())}
