"""Serving's lean, memory-mapped models and their serving indexes give the models' own answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import ModelHandle
from models.arrays import mmap_npz
from models.fast import FactorIndex, NeighbourIndex
from models.registry import Registry
from ranking.modelset import load_model_set


def _close(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> None:
    """Same scores in the same order, and the same item for each score (ties at the cut-off
    may pick different items of equal score)."""
    assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-4, abs=1e-5)
    if a:
        cut = min(s for _, s in a) + 1e-4 * max(1.0, abs(min(s for _, s in a)))
        above_a = {i: s for i, s in a if s > cut}
        above_b = {i: s for i, s in b if s > cut}
        assert above_a.keys() == above_b.keys()


@pytest.mark.parametrize("first_chunk", [4096, 16])  # 16: the norm-bound pruning stops early
def test_serving_indexes_match_the_models(
    shop_home: Path,
    trained: dict[str, ModelHandle],
    first_chunk: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(FactorIndex, "first_chunk", first_chunk)
    models = load_model_set(shop_home / "models", {n: "v1" for n in trained})
    reg = Registry(shop_home / "models")
    als = models.get("als")
    assert als is not None and isinstance(als.index, FactorIndex) and als.knows_users
    assert not models.get("item_knn").knows_users  # type: ignore[union-attr]
    ref_als = reg.load("als", "v1")
    users = [str(u) for u in ref_als.model.user_ids_.ids[:25]]
    items = [str(i) for i in ref_als.model.item_ids_.ids[:40]]
    for u in users:
        got = als.recommend(user_id=u, n=20, exclude=items[:3], filter_seen=False)
        want = ref_als.recommend(user_id=u, n=20, exclude=set(items[:3]), filter_seen=False)
        _close(got, want)
        assert not {i for i, _ in got} & set(items[:3])
        # a top category, a leaf and a missing one, each scored as a slice of the
        # category-sorted copy of the factors; with items of the category excluded
        cats = ref_als.model.item_categories_
        leaf = tuple(cats[0].split(" > "))
        in_cat = [
            i
            for i, c in zip(ref_als.model.item_ids_.ids, cats, strict=True)
            if c.startswith("服裝")
        ][:4]
        for cat in (("服裝",), leaf, ("no such category",)):
            assert als.index._span(cat)[0] >= 0
            _close(
                als.recommend(user_id=u, n=10, exclude=in_cat, category=cat, filter_seen=False),
                ref_als.recommend(
                    user_id=u, n=10, category=cat, exclude=set(in_cat), filter_seen=False
                ),
            )
        scores = als.score_items(items, u, ())
        ref = ref_als.model
        uvec = ref.user_factors_[ref.user_ids_.index(u)]
        for i, s in scores.items():
            # float32 sums in another order: a score near 0 (cancellation) differs relatively
            # more, so the tolerance scales with the vectors' norms
            vec = ref.item_factors_[ref.item_ids_.index(i)]
            bound = 1e-5 * float(np.linalg.norm(vec) * np.linalg.norm(uvec))
            assert s == pytest.approx(float(vec @ uvec), rel=1e-4, abs=bound)
    for name in ("item_knn", "bought_together"):
        m, ref_m = models.get(name), reg.load(name, "v1")
        assert m is not None and isinstance(m.index, NeighbourIndex)
        for i in items:
            _close(m.similar(i, 10, exclude=[items[0]]), ref_m.similar(i, n=10, exclude={items[0]}))
        assert m.similar("no-such-item", 10) == []
    for name in ("trending", "popularity", "new_arrivals"):
        m, ref_m = models.get(name), reg.load(name, "v1")
        assert m is not None and m.lists is not None
        for n in (5, 40):
            _close(m.recommend(n=n), ref_m.recommend(history=[], n=n))


def test_npz_arrays_are_memory_mapped_unchanged(
    shop_home: Path, trained: dict[str, ModelHandle]
) -> None:
    path = Registry(shop_home / "models").path("als", "v1") / "arrays.npz"
    mapped = mmap_npz(path)
    with np.load(path, allow_pickle=False) as ref:
        assert set(mapped) == set(ref.files)
        for k in ref.files:
            np.testing.assert_array_equal(np.asarray(mapped[k]), ref[k])
    assert isinstance(mapped["item_factors_"], np.memmap)


@pytest.mark.parametrize("n", [5, 50, 400])  # 5: each anchor's list is cut to its top n
def test_history_source_in_numpy_matches_the_generic_path(
    shop_home: Path, trained: dict[str, ModelHandle], n: int
) -> None:
    import random

    from ranking import candidates as C
    from ranking.profile import UserProfile

    models = load_model_set(shop_home / "models", {name: "v1" for name in trained})
    knn = models.get("item_knn")
    assert knn is not None and isinstance(knn.index, NeighbourIndex)
    items = [
        str(i) for i in Registry(shop_home / "models").load("item_knn", "v1").model.item_ids_.ids
    ]
    rnd = random.Random(3)
    checked = 0
    for _ in range(40):
        history = tuple(rnd.sample(items, rnd.randint(1, 8)))
        exclude = frozenset(rnd.sample(items, rnd.randint(0, 20)))
        req = C.SourceRequest(UserProfile(user_id="u"), n, models, history, exclude)
        fast = C._history_fast(req, history[: C.HISTORY_ITEMS], knn, knn.index)
        slow = C._history_pairs(req, history[: C.HISTORY_ITEMS], [knn])
        if fast is None:  # an anchor without neighbours: the generic path serves it
            continue
        assert slow is not None
        got = list(zip(fast.ids, fast.scores, strict=True))
        want = list(zip(slow.ids, slow.scores, strict=True))
        _close(got, want)
        assert not set(fast.ids) & (set(history) | exclude)
        by_id = {i: r.related_item_id for i, r in zip(slow.ids, slow.reasons, strict=True)}  # type: ignore[arg-type]
        counts: dict[float, int] = {}
        for s in slow.scores:
            counts[round(s, 9)] = counts.get(round(s, 9), 0) + 1
        for i, s, r in zip(fast.ids, fast.scores, fast.reasons, strict=True):  # type: ignore[arg-type]
            if counts.get(round(s, 9)) == 1 and i in by_id:
                assert r.related_item_id == by_id[i]
        checked += 1
    assert checked >= 20


def test_derived_factor_copies_are_one_shared_file(
    shop_home: Path, trained: dict[str, ModelHandle], tmp_path: Path
) -> None:
    """Every loader maps the same derived files (so workers share their pages); they hold
    what a private build holds; a damaged file is built again."""
    import os

    versions = {n: "v1" for n in trained}
    for age, old in enumerate(("old3", "old2", "old1")):  # copies of versions served before
        (tmp_path / "als" / old).mkdir(parents=True)
        os.utime(tmp_path / "als" / old, (1_000_000 + age, 1_000_000 + age))
    private = load_model_set(shop_home / "models", versions).get("als")
    first = load_model_set(shop_home / "models", versions, derived_dir=tmp_path).get("als")
    # the three most recent versions' copies are kept, the one just loaded among them
    assert sorted(p.name for p in (tmp_path / "als").iterdir()) == ["old1", "old2", "v1"]
    second = load_model_set(shop_home / "models", versions, derived_dir=tmp_path).get("als")
    assert private is not None and first is not None and second is not None
    for name in ("_by_norm", "_by_cat"):
        a, b, own = (
            getattr(first.index, name),
            getattr(second.index, name),
            getattr(private.index, name),
        )
        assert (
            isinstance(a, np.memmap) and isinstance(b, np.memmap) and not isinstance(own, np.memmap)
        )
        assert a.filename == b.filename and Path(a.filename).parent == tmp_path / "als" / "v1"
        np.testing.assert_array_equal(a, own)
    user = str(first.model.user_ids_.ids[0])
    assert first.recommend(user, n=10, filter_seen=False) == private.recommend(
        user, n=10, filter_seen=False
    )
    # the sorted user ids too: one mapped file, the same row for every user as a private build
    ids_a, ids_b = first.model.user_ids_, second.model.user_ids_
    assert isinstance(ids_a._sorted, np.memmap) and isinstance(ids_a._order, np.memmap)
    assert ids_a._sorted.filename == ids_b._sorted.filename
    assert Path(ids_a._sorted.filename).parent == tmp_path / "als" / "v1"
    own_ids = private.model.user_ids_
    assert not isinstance(own_ids._sorted, np.memmap) and len(ids_b) == len(own_ids) > 0
    for u in own_ids.ids:
        assert ids_b.index(str(u)) == own_ids.index(str(u)) >= 0
    assert ids_b.index("nobody-ever") == -1
    damaged = tmp_path / "als" / "v1" / "items_by_norm.npy"
    damaged.write_bytes(b"not an array")
    again = load_model_set(shop_home / "models", versions, derived_dir=tmp_path).get("als")
    assert again is not None
    np.testing.assert_array_equal(again.index._by_norm, private.index._by_norm)  # type: ignore[union-attr]
