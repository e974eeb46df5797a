from models.popularity import Popularity
from tests.models.contract import Contract


class TestPopularity(Contract):
    # b2: viewed by some odd users and clicked by ten more — the most users of any item.
    factory = staticmethod(Popularity)
    expect_first = "b2"
    similar_in_group = False
