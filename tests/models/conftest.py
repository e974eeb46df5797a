from __future__ import annotations

import pytest

from models.interactions import Interactions
from models.popularity import Popularity
from tests.models import tiny_shop


@pytest.fixture(scope="session")
def shop() -> Interactions:
    return tiny_shop.interactions()


@pytest.fixture()
def small_model(shop: Interactions) -> Popularity:
    return Popularity().fit(shop)
