from __future__ import annotations

import pytest

from recsys.models.popularity import Popularity
from tests.recsys.models import tiny_shop
from training.interactions import Interactions


@pytest.fixture(scope="session")
def shop() -> Interactions:
    return tiny_shop.interactions()


@pytest.fixture()
def small_model(shop: Interactions) -> Popularity:
    return Popularity().fit(shop)
