from __future__ import annotations

import pytest

from tests.recsys.models import tiny_shop
from training.interactions import Interactions


@pytest.fixture(scope="session")
def shop() -> Interactions:
    return tiny_shop.interactions()
