from models.als import ALS
from tests.models.contract import Contract


class TestALS(Contract):
    factory = staticmethod(lambda: ALS(factors=4, iterations=20, regularization=0.1))
    top_in_group = 2  # 4 factors on 12 items: the third pick is already noisy
