from models.content import ContentSimilarity, item_tokens
from tests.models.contract import Contract


class TestContent(Contract):
    factory = staticmethod(ContentSimilarity)


def test_tokens_fold_traditional_to_simplified_and_lowercase() -> None:
    trad = item_tokens("紅色連衣裙 Red DRESS", "Lumière", ("服裝", "女裝"), ("夏季",))
    simp = item_tokens("红色连衣裙 red dress", "lumière", ("服装", "女装"), ("夏季",))
    assert trad == simp
    assert "连衣" in trad and "cat:服装 > 女装" in trad and "brand:lumière" in trad
