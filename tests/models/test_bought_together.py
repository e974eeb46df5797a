from models.bought_together import BoughtTogether
from models.interactions import Interactions
from tests.models.contract import Contract


class TestBoughtTogether(Contract):
    factory = staticmethod(lambda: BoughtTogether(min_support=2))
    history = ("a0",)
    top_in_group = 1


def test_planted_bundle_is_the_top_partner(shop: Interactions) -> None:
    m = BoughtTogether(min_support=2).fit(shop)
    ids, scores = m.similar_items(shop.items.index("b0"), 5)
    assert m.item_ids_.to_ids(ids[ids >= 0]) == ["b1"]  # nothing else shares a basket
    assert scores[0] > 0


def test_min_support_drops_rare_pairs(shop: Interactions) -> None:
    m = BoughtTogether(min_support=11).fit(shop)  # each bundle is bought 10 times
    assert m.association_.nnz == 0


TestBoughtTogether.known_users_get_items = False  # every user already has both bundle items
