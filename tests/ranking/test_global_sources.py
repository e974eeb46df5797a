"""Non-personal sources keep a bounded number of explained lists, keyed by model version, and
answer what the model ranks minus what the request excludes."""

from __future__ import annotations

from types import MappingProxyType

import ranking.candidates as C
from data.catalog import Catalog
from models import ModelHandle
from models.trending import Trending
from ranking.live import LiveCounts
from ranking.modelset import ModelSet
from ranking.profile import UserProfile
from tests.models import tiny_shop


def models(version: str) -> ModelSet:
    fitted = Trending(half_life_days=1.0).fit(tiny_shop.interactions())
    handle = ModelHandle.for_serving(fitted, name="trending", version=version)
    return ModelSet(MappingProxyType({"trending": handle}))


def request(ms: ModelSet, n: int, exclude: frozenset[str] = frozenset(),
            category: tuple[str, ...] | None = None) -> C.SourceRequest:
    return C.SourceRequest(UserProfile(user_id=""), n, ms, exclude=exclude, category=category)


def test_lists_follow_the_model_and_stay_bounded() -> None:
    sources = C.GlobalSources(Catalog(tiny_shop.items()), LiveCounts())
    v1 = models("v1")
    model_ids = [i for i, _ in v1.models["trending"].recommend(n=12)]
    for k in range(12):  # every exclusion size: one list serves them all
        exclude = frozenset(model_ids[:k])
        got = [s.item_id for s in sources.trending(request(v1, 3, exclude))]
        assert got == [i for i in model_ids if i not in exclude][:3]
        assert all(s.reasons[0].model_version == "v1" for s in sources.trending(request(v1, 3)))
    assert sources.cached_lists() == 1
    phones = [s.item_id for s in sources.trending(request(v1, 5, category=("電子",)))]
    assert phones and all(i.startswith("b") for i in phones)
    v2 = models("v2")  # a new version is a new list, never the old one's items
    assert {s.reasons[0].model_version for s in sources.trending(request(v2, 3))} == {"v2"}
    for k in range(3 * C.GLOBAL_LISTS):
        sources.trending(request(models(f"v{k + 3}"), 2))
    assert sources.cached_lists() == C.GLOBAL_LISTS
