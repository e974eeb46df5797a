import numpy as np
import pytest

from models.errors import MissingInputError
from models.interactions import Interactions
from models.trending import NewArrivals, Trending
from tests.models.contract import Contract


class TestTrending(Contract):
    factory = staticmethod(lambda: Trending(half_life_days=1.0))
    expect_first = "b2"  # the last days' clicks
    similar_in_group = False


class TestNewArrivals(Contract):
    factory = staticmethod(lambda: NewArrivals(max_age_days=None))
    expect_first = "b5"  # created last
    similar_in_group = False


def test_trending_decays_with_age(shop: Interactions) -> None:
    slow = Trending(half_life_days=1000.0).fit(shop)
    fast = Trending(half_life_days=0.5).fit(shop)
    b2, a0 = shop.items.index("b2"), shop.items.index("a0")
    # a0's purchases are older than b2's clicks: a short half-life favours b2 more.
    assert fast.trend_[b2] / fast.trend_[a0] > slow.trend_[b2] / slow.trend_[a0]


def test_trending_per_category(shop: Interactions) -> None:
    m = Trending(half_life_days=1.0).fit(shop)
    ids, _ = m.recommend_cold([], 3, candidates=m.items_in_category(("服裝",)))
    got = m.item_ids_.to_ids(ids[ids >= 0])
    assert got and all(i.startswith("a") for i in got)


def test_new_arrivals_need_the_catalog(shop: Interactions) -> None:
    from dataclasses import replace

    with pytest.raises(MissingInputError, match="catalog"):
        NewArrivals().fit(replace(shop, catalog=None))
    assert np.isfinite(NewArrivals().fit(shop).freshness_).all()
