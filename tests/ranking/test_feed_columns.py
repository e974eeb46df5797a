"""The feed's page-1 shortcuts give what the plain computations give: the blend's order, items
built only when read (:class:`ranking.blend.BlendedItems`), the stored list encoded from
columns, packed non-personal sources, diversity, and the served log's rounding."""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from types import MappingProxyType

import numpy as np
import pytest

import ranking.candidates as C
from data.catalog import Catalog
from data.served_log import ServedList, served_body, served_from
from ranking.blend import BlendedItems, blend
from ranking.diversity import diversity_order
from ranking.live import LiveCounts
from ranking.pipeline import Ranked
from ranking.types import RankContext, Reason, ScoredItem
from serving.feed_pages import decode_ranked, encode_ranked
from tests.models import tiny_shop
from tests.ranking.test_global_sources import models, request

CF = Reason("cf", "picked for you (als)", model_version="v1")
TRENDING = Reason("trending", "trending now", model_version="t1")
F32_MAX = float(np.finfo(np.float32).max)


def _sources(rng: random.Random) -> tuple[dict[str, C.CandList | list[ScoredItem]],
                                           dict[str, float]]:
    """Four lists over 60 ids: one reason per list, one per item (three anchors), built items
    with one reason each, and built items with two reasons; ranks repeat across lists, so
    totals tie."""
    pool = [f"i{k}" for k in range(60)]
    anchors = [Reason("history", "similar to an item you viewed", related_item_id=f"a{k}")
               for k in range(3)]
    ids = [rng.sample(pool, rng.randrange(5, 40)) for _ in range(4)]
    lists: dict[str, C.CandList | list[ScoredItem]] = {
        "cf": C.CandList("cf", ids[0], [rng.random() for _ in ids[0]], CF),
        "history": C.CandList("history", ids[1], [rng.random() for _ in ids[1]],
                              [rng.choice(anchors) for _ in ids[1]]),
        "trending": [ScoredItem(i, 1.0 / (r + 1), (TRENDING,), {"trending": 1.0 / (r + 1)})
                     for r, i in enumerate(ids[2])],
        "promoted": [ScoredItem(i, 0.5, (Reason("promoted", "promoted"), CF), {"promoted": 0.5})
                     for i in ids[3]],
    }
    return lists, {"cf": 1.0, "history": 1.0, "trending": 0.3, "promoted": 0.3}


@pytest.mark.parametrize("seed", range(20))
def test_blend_orders_by_total_then_id(seed: int) -> None:
    lists, weights = _sources(random.Random(seed))
    got = blend(lists, weights)
    total: dict[str, float] = {}
    for source, cands in lists.items():
        ids = cands.ids if isinstance(cands, C.CandList) else [it.item_id for it in cands]
        for r, i in enumerate(ids):
            total[i] = total.get(i, 0.0) + weights[source] * math.exp(-r / 25.0)
    assert got.order == sorted(total, key=lambda i: (-got.score[i], i))
    assert got.score.keys() == total.keys()
    assert all(math.isclose(got.score[i], total[i], rel_tol=1e-12) for i in total)


@pytest.mark.parametrize("seed", range(20))
def test_lazy_items_are_the_built_items(seed: int) -> None:
    rng = random.Random(seed)
    lists, weights = _sources(rng)
    b = blend(lists, weights)
    ids = rng.sample(b.order, min(len(b.order), 30))
    extra = (Reason("experiment", "exp:b"),) if seed % 2 else ()
    built = [ScoredItem(i, b.score[i], b.item(i).reasons + extra, dict(b.breakdown(i)))
             for i in ids]
    lazy = BlendedItems(b, ids, extra)
    per_item, sets = lazy.reason_sets()
    assert [sets[k] for k in per_item] == [it.reasons for it in built]
    assert lazy.scores() == [it.score for it in built]
    assert lazy.breakdowns(7) == [(it.item_id, it.breakdown) for it in built[:7]]
    assert lazy.breakdown_columns(7) is None  # built items in the lists: no columns
    assert lazy[2:9] == built[2:9] and lazy[-1] == built[-1] and len(lazy) == len(built)
    assert lazy == built and list(lazy) == built
    with pytest.raises(IndexError):
        lazy[len(built)]  # noqa: B018


@pytest.mark.parametrize("seed", range(10))
def test_logged_breakdowns_are_the_same_from_columns(seed: int) -> None:
    rng = random.Random(seed)
    lists, weights = _sources(rng)
    trending = lists["trending"]
    assert isinstance(trending, list)
    packed = {"cf": lists["cf"], "history": lists["history"],
              "trending": C.CandList("trending", [it.item_id for it in trending],
                                     [it.score for it in trending], TRENDING)}
    b = blend(packed, weights)
    lazy = BlendedItems(b, rng.sample(b.order, min(len(b.order), 30)))
    cols = lazy.breakdown_columns(20)
    assert cols is not None
    want = lazy.breakdowns(20)
    assert [(i, list(bd.items())) for i, bd in cols] == [(i, list(bd.items())) for i, bd in want]
    at = datetime(2026, 1, 2, tzinfo=UTC)
    back = [served_from("r", at, "u", served_body(ServedList("r", at, "feed", "u", shown)))
            for shown in (cols, tuple(want))]
    assert back[0] == back[1] and len(back[0].items) == len(want)
    nan_score = {**packed, "cf": C.CandList("cf", packed["cf"].ids,  # type: ignore[union-attr]
                                            [math.nan] * len(packed["cf"]), CF)}
    nan_ids = packed["cf"].ids[:5]  # type: ignore[union-attr]
    assert BlendedItems(blend(nan_score, weights), nan_ids).breakdown_columns(5) is None


def _ranked(items: list[ScoredItem] | BlendedItems) -> Ranked:
    ctx = RankContext(surface="feed", user_id="u1", now=datetime(2026, 1, 2, tzinfo=UTC),
                      request_id="r1")
    return Ranked(items, ctx, "personalized", MappingProxyType({"als": "v1"}))


@pytest.mark.parametrize("seed", range(10))
def test_the_stored_list_is_the_same_from_columns(seed: int) -> None:
    rng = random.Random(seed)
    b = blend(*_sources(rng))
    lazy = BlendedItems(b, rng.sample(b.order, min(len(b.order), 25)))
    built = list(lazy)
    for keep in (False, True):
        from_columns = encode_ranked(_ranked(lazy), keep_breakdown=keep)
        assert from_columns == encode_ranked(_ranked(built), keep_breakdown=keep)
        back = decode_ranked(from_columns).items
        assert [(it.item_id, it.score, it.reasons) for it in back] == \
            [(it.item_id, it.score, it.reasons) for it in built]
        if keep:
            assert [dict(it.breakdown) for it in back] == [dict(it.breakdown) for it in built]


def test_packed_sources_hold_the_listed_items() -> None:
    sources = C.GlobalSources(Catalog(tiny_shop.items()), LiveCounts())
    ms = models("v1")
    model_ids = [i for i, _ in ms.models["trending"].recommend(n=12)]
    excluded = [frozenset(model_ids[:k]) for k in (0, 2, 9)] + [
        frozenset(model_ids[1::2]), frozenset({"not-listed", model_ids[0], model_ids[5]})]
    cases = [request(ms, n, e) for n in (1, 3, 8, 500) for e in excluded]
    cases.append(request(ms, 5, category=("電子",)))
    for req in cases:
        items = sources.trending(req)
        packed = sources.trending(req, packed=True)
        assert isinstance(packed, C.CandList) and packed.name == "trending"
        assert packed.ids == [it.item_id for it in items]
        assert packed.scores == [it.score for it in items]
        assert all(packed.reasons_at(r) == it.reasons for r, it in enumerate(items))
        assert all(it.breakdown == {"trending": it.score} for it in items)


def _diversity_reference(groups: list[str | None], max_per_window: int, window: int,
                         relax: bool, limit: int | None) -> list[int]:
    """The rule as stated: at each position the first remaining item (in input order) whose
    group has fewer than ``max_per_window`` among the previous ``window - 1`` positions; none:
    the first remaining one (``relax``) or the end."""
    if max_per_window <= 0 or window <= 1 or max_per_window >= window:
        return list(range(len(groups)))[:limit]
    left = list(range(len(groups)))
    out: list[int] = []
    while left and (limit is None or len(out) < limit):
        recent = [groups[p] for p in out[-(window - 1):]]
        fits = [p for p in left
                if groups[p] is None or recent.count(groups[p]) < max_per_window]
        if not fits and not relax:
            break
        pick = fits[0] if fits else left[0]
        out.append(pick)
        left.remove(pick)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_diversity_keeps_the_rule(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(0, 80)
    groups = [rng.choice(["a", "a", "a", "b", "c", None]) for _ in range(n)]
    ids = [f"i{k}" for k in range(n)]
    group: Callable[[str], str | None] = dict(zip(ids, groups, strict=True)).__getitem__
    for max_per_window, window in ((3, 5), (1, 2), (2, 6), (0, 5), (5, 5)):
        for relax in (True, False):
            for limit in (None, 10, n // 2):
                read: deque[str] = deque()

                def counted(read: deque[str] = read) -> object:
                    for i in ids:
                        read.append(i)
                        yield i

                got = diversity_order(counted(), group, max_per_window=max_per_window,
                                      window=window, relax=relax, limit=limit)
                assert got == _diversity_reference(groups, max_per_window, window, relax,
                                                   limit)
                if got:  # read only as far as the picks needed (or to the end)
                    assert len(read) in (max(got) + 1, n)


def test_served_scores_keep_what_float32_keeps() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.random(200), rng.random(50) * 1e-8, rng.random(50) * 1e6,
                             [0.0, -0.0, 1.0, -2.5]]).tolist()
    items = tuple((f"i{k}", {"cf": v, "blend:cf": values[-k - 1]})
                  for k, v in enumerate(values))
    odd = (("x", {"nan": math.nan, "inf": math.inf, "big": 1e300}), ("y", {}))
    at = datetime(2026, 1, 2, tzinfo=UTC)
    for shown in (items, items + odd):
        served = ServedList("r1", at, "feed", "u1", shown, "b", None, "q")
        back = served_from("r1", at, "u1", served_body(served))
        assert (back.surface, back.variant, back.ranker_version, back.query) == \
            ("feed", "b", None, "q")
        assert [i for i, _ in back.items] == [i for i, _ in shown]
        for (_, want), (_, got) in zip(shown, back.items, strict=True):
            assert list(got) == list(want)
            for k, v in want.items():
                if not math.isfinite(v) or abs(v) > F32_MAX:
                    assert got[k] == v or (math.isnan(v) and math.isnan(got[k]))
                else:
                    assert np.float32(got[k]) == np.float32(v)
                    assert math.copysign(1.0, got[k]) == math.copysign(1.0, v)
    old = {"surface": "feed", "items": [["i1", {"cf": 0.5}]]}  # logged before items_json
    assert served_from("r0", at, None, old).items == (("i1", {"cf": 0.5}),)


@pytest.mark.parametrize("seed", range(6))
def test_catalog_head_is_keep_and_group_item_by_item(seed: int) -> None:
    rng = random.Random(seed)
    items = [it.model_copy(update={"stock": 5}) for it in tiny_shop.items()]
    items[1] = items[1].model_copy(update={"stock": 0})  # out of stock
    items[7] = items[7].model_copy(update={"is_active": False})
    items[8] = items[8].model_copy(update={"category": ()})  # no group
    catalog = Catalog(items)
    assert sum(catalog.is_recommendable(it.item_id) for it in items) == len(items) - 2
    ids = [it.item_id for it in items] + ["unknown-1", "unknown-2"]
    rng.shuffle(ids)
    exclude = set(rng.sample(ids, 5))
    cats = sorted({tuple(it.category) for it in items if it.category})
    for category in (None, (), cats[0][:1], cats[-1]):
        for size in (0, 3, len(ids)):
            want = [p for p, i in enumerate(ids) if catalog.keep(i, exclude, category)][:size]
            pos: list[int] = []
            groups = catalog.head(ids, exclude, category, size, pos)
            first = next(groups, "none")  # lazy: one item read, one position given
            assert pos == want[:1]
            rest = list(groups)
            assert pos == want
            assert [first, *rest][: len(want)] == [catalog.category_group(ids[p]) for p in want]
