import pytest

from recsys.models.ease import EASE
from recsys.models.errors import ModelTooLargeError
from tests.recsys.models.contract import Contract
from training.interactions import Interactions


class TestEASE(Contract):
    factory = staticmethod(lambda: EASE(l2=10.0))


def test_item_limit_gives_a_clear_error(shop: Interactions) -> None:
    with pytest.raises(ModelTooLargeError, match="at most 5 items.*item_knn"):
        EASE(max_items=5).fit(shop)
