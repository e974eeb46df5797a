import pytest

from models.ease import EASE
from models.errors import ModelTooLargeError
from models.interactions import Interactions
from tests.models.contract import Contract


class TestEASE(Contract):
    factory = staticmethod(lambda: EASE(l2=10.0))


def test_item_limit_gives_a_clear_error(shop: Interactions) -> None:
    with pytest.raises(ModelTooLargeError, match="at most 5 items.*item_knn"):
        EASE(max_items=5).fit(shop)
