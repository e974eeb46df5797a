"""Price words read from the query text (`search.understand`)."""

from __future__ import annotations

import pytest

from search.understand import understand


@pytest.mark.parametrize(
    ("text", "rest", "bounds"),
    [
        ("500元以下 藍牙耳機", "藍牙耳機", {"lte": 500.0}),
        ("藍牙耳機500元以下", "藍牙耳機", {"lte": 500.0}),
        ("耳機 under $1000", "耳機", {"lte": 1000.0}),
        ("低於1千元 耳機", "耳機", {"lte": 1000.0}),
        ("1000元以上 跑步鞋", "跑步鞋", {"gte": 1000.0}),
        ("300到800元 面霜", "面霜", {"gte": 300.0, "lte": 800.0}),
        ("800-300元 面霜", "面霜", {"gte": 300.0, "lte": 800.0}),
    ],
)
def test_price_phrases_become_bounds(text: str, rest: str, bounds: dict[str, float]) -> None:
    u = understand(text)
    assert u.text == rest
    assert u.price is not None
    assert u.price.model_dump(include={"gte", "lte"}, exclude_none=True) == bounds


@pytest.mark.parametrize("text", ["iPhone 15 手機", "A-123", "Nike Air 270", "5000 mAh 行動電源"])
def test_numbers_without_price_words_stay_text(text: str) -> None:
    u = understand(text)
    assert u.price is None and u.text == text


def test_an_amount_beyond_the_filter_bounds_is_not_a_price() -> None:
    u = understand("99999999999999999999元以下 耳機")
    assert u.price is None and u.text == "99999999999999999999元以下 耳機"
