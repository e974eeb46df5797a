import pytest

from models.item_knn import ItemKNN
from tests.models.contract import Contract


class TestItemKNNBM25(Contract):
    factory = staticmethod(lambda: ItemKNN(similarity="bm25", neighbors=20))


class TestItemKNNCosine(Contract):
    factory = staticmethod(lambda: ItemKNN(similarity="cosine", neighbors=20))


def test_unknown_similarity_is_refused_by_params() -> None:
    with pytest.raises(TypeError):
        ItemKNN(weighting="bm25")  # type: ignore[call-arg]
