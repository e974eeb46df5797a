"""The catalog the rule tests rank over."""

from __future__ import annotations

import pytest

from data.catalog import Catalog
from tests.merch.rules_support import make_item


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        [
            make_item("a", "Acme", "服裝 > 女裝 > 連衣裙", 100, "sale"),
            make_item("b", "Bolt", "服裝 > 女裝 > 連衣裙", 300),
            make_item("c", "Acme", "服裝 > 男裝", 50, days_old=3),
            make_item("d", "Cora", "手機", 2000, "sale"),
            make_item("e", "Bolt", "手機", 900),
            make_item("x", "Cora", "手機", 10),  # never in the ranked list: pin fodder
            make_item("gone", "Cora", "手機", 10, stock=0),
        ]
    )
