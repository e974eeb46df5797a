from models.content import ContentSimilarity, item_tokens
from tests.models.contract import Contract


class TestContent(Contract):
    factory = staticmethod(ContentSimilarity)


def test_tokens_fold_traditional_to_simplified_and_lowercase() -> None:
    trad = item_tokens("紅色連衣裙 Red DRESS", "Lumière", ("服裝", "女裝"), ("夏季",))
    simp = item_tokens("红色连衣裙 red dress", "lumière", ("服装", "女装"), ("夏季",))
    assert trad == simp
    assert "连衣" in trad and "cat:服装 > 女装" in trad and "brand:lumière" in trad



def test_popularity_prior_adds_each_items_share_of_shoppers() -> None:
    import numpy as np

    from tests.models import tiny_shop

    data = tiny_shop.interactions()
    plain = ContentSimilarity(popularity_weight=0.0).fit(data)
    prior = ContentSimilarity(popularity_weight=1.0).fit(data)
    n = plain.n_items
    ids0, s0 = plain.recommend(0, n, filter_seen=False)
    ids1, s1 = prior.recommend(0, n, filter_seen=False)
    by0 = dict(zip(ids0.tolist(), s0.tolist(), strict=True))
    by1 = dict(zip(ids1.tolist(), s1.tolist(), strict=True))
    pop = prior.popularity_
    shoppers = np.bincount(data.matrix.indices, minlength=n)
    assert pop is not None and pop.max() == 1.0
    np.testing.assert_allclose(pop, np.log1p(shoppers) / np.log1p(shoppers.max()), rtol=1e-6)
    for i in set(by0) & set(by1):
        assert abs(by1[i] - (by0[i] + pop[i])) < 1e-5
    # a0 and a1, bought by every group-a shopper, lead user 0's (group a) list with the prior
    assert {prior.item_ids_.id(i) for i in ids1[:2].tolist()} == {"a0", "a1"}
