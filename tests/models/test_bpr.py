from models.bpr import BPR
from tests.models.contract import Contract


class TestBPR(Contract):
    factory = staticmethod(lambda: BPR(factors=8, iterations=200, learning_rate=0.05))
