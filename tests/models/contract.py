"""The contract every model passes. A model's test file subclasses :class:`Contract` and
supplies ``factory`` plus what the tiny shop should show for it (see tiny_shop.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from models import ModelHandle, load_model
from models.base import ARRAYS_FILE, Recommender
from models.errors import ModelLoadError, NotFittedError
from models.interactions import Interactions


class Contract:
    factory: ClassVar[Callable[[], Recommender]]
    history: ClassVar[tuple[str, ...]] = ("a2", "a3")
    """A cold user's history for which the top items must come from ``group``."""
    group: ClassVar[tuple[str, ...]] = ("a0", "a1", "a4", "a5", "b2")
    """What group-a users interact with (b2: every one of them clicked it lately)."""
    top_in_group: ClassVar[int] = 3
    expect_first: ClassVar[str | None] = None
    """Non-personalized models: the item that must come first for everyone."""
    similar_in_group: ClassVar[bool] = True
    known_users_get_items: ClassVar[bool] = True
    """False when the tiny shop leaves the model nothing to say about known users."""

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls, shop: Interactions) -> Recommender:
        return cls.factory().fit(shop)

    def _ids(self, model: Recommender, idx: np.ndarray) -> list[str]:
        return model.item_ids_.to_ids(idx[idx >= 0])

    # ----------------------------------------------------------------- manners
    def test_unfitted_use_raises_a_clear_error(self, tmp_path: Path) -> None:
        m = type(self).factory()
        for call in (lambda: m.recommend(0), lambda: m.similar_items(0),
                     lambda: m.recommend_cold([0]), lambda: m.save(tmp_path)):
            with pytest.raises(NotFittedError, match="not fitted"):
                call()

    def test_fit_returns_self_and_learned_attributes_end_in_underscore(
        self, shop: Interactions
    ) -> None:
        m = type(self).factory()
        assert m.fit(shop) is m
        for name in m._learned:
            assert name.endswith("_") and getattr(m, name) is not None
        assert m.n_users == shop.shape[0] and m.n_items == shop.shape[1]

    # ----------------------------------------------------------------- known users
    def test_recommend_known_user_filters_seen_and_sorts(
        self, model: Recommender, shop: Interactions
    ) -> None:
        for u in range(4):
            ids, scores = model.recommend(u, 5)
            assert ids.shape == (5,) and scores.shape == (5,)
            valid = ids >= 0
            assert valid.any() or not self.known_users_get_items
            assert np.all(np.diff(scores[valid]) <= 1e-6)
            seen = set(shop.matrix[u].indices)
            assert not seen & set(ids[valid].tolist())
            assert len(set(ids[valid].tolist())) == int(valid.sum())

    def test_batch_equals_one_by_one(self, model: Recommender) -> None:
        users = np.array([0, 1, 2, 5])
        ids, scores = model.recommend(users, 4)
        assert ids.shape == (4, 4)
        for row, u in enumerate(users):
            one_ids, one_scores = model.recommend(int(u), 4)
            np.testing.assert_array_equal(ids[row], one_ids)
            np.testing.assert_allclose(scores[row], one_scores, rtol=1e-4)

    def test_exclude_and_candidates(self, model: Recommender, shop: Interactions) -> None:
        hist = model.item_ids_.indices(self.history)
        ids, _ = model.recommend_cold(hist, 3)
        top = int(ids[0])
        assert top >= 0
        again, _ = model.recommend_cold(hist, 3, exclude=[top])
        assert top not in again
        cand = np.array([i for i in range(shop.shape[1]) if i != top][:5])
        only, _ = model.recommend(0, 10, candidates=cand, filter_seen=False)
        assert set(only[only >= 0].tolist()) <= set(cand.tolist())
        none, _ = model.recommend(0, 10, candidates=[top], exclude=[top])
        assert (none == -1).all()

    def test_history_adds_to_a_known_user(self, model: Recommender) -> None:
        extra = model.history_rows([np.array([model.item_ids_.index("b3")])])
        ids, _ = model.recommend([0], 12, history=extra)
        assert model.item_ids_.index("b3") not in ids  # now seen, so filtered

    # ----------------------------------------------------------------- cold users
    def test_cold_user_from_history(self, model: Recommender) -> None:
        hist = model.item_ids_.indices(self.history)
        ids, scores = model.recommend_cold(hist, 5)
        got = self._ids(model, ids)
        assert not set(got) & set(self.history)
        if self.expect_first is not None:
            assert got[0] == self.expect_first
        else:
            assert len(got) >= self.top_in_group
            assert all(i in self.group for i in got[: self.top_in_group]), got

    def test_cold_user_without_history(self, model: Recommender) -> None:
        ids, _ = model.recommend_cold([], 5)
        if model.personalized:
            assert (ids == -1).all()
        else:
            assert (ids >= 0).any()

    # ----------------------------------------------------------------- similar items
    def test_similar_items(self, model: Recommender) -> None:
        a0 = model.item_ids_.index("a0")
        ids, scores = model.similar_items(a0, 4)
        got = self._ids(model, ids)
        assert "a0" not in got and got
        assert np.all(np.diff(scores[ids >= 0]) <= 1e-6)
        if self.similar_in_group:
            assert got[0].startswith("a"), got

    # ----------------------------------------------------------------- persistence
    def test_save_load_round_trip(self, model: Recommender, tmp_path: Path) -> None:
        model.save(tmp_path / "m")
        again = type(model).load(tmp_path / "m")
        users = np.arange(6)
        a, sa = model.recommend(users, 5)
        b, sb = again.recommend(users, 5)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(sa, sb, rtol=1e-5)
        hist = model.item_ids_.indices(self.history)
        np.testing.assert_array_equal(model.recommend_cold(hist, 5)[0],
                                      again.recommend_cold(hist, 5)[0])
        np.testing.assert_array_equal(model.similar_items(0, 3)[0], again.similar_items(0, 3)[0])
        with np.load(tmp_path / "m" / ARRAYS_FILE, allow_pickle=False) as data:
            assert len(data.files) > 0

    def test_load_refuses_bad_folders(self, model: Recommender, tmp_path: Path) -> None:
        with pytest.raises(ModelLoadError, match="no model.json"):
            type(model).load(tmp_path / "missing")
        model.save(tmp_path / "m")
        (tmp_path / "m" / ARRAYS_FILE).write_bytes(b"not a zip file")
        with pytest.raises(ModelLoadError, match="cannot read"):
            load_model(tmp_path / "m")

    # ----------------------------------------------------------------- id facade
    def test_handle_speaks_ids(self, model: Recommender, tmp_path: Path) -> None:
        model.save(tmp_path / "h")
        h = load_model(tmp_path / "h", version="v1")
        assert isinstance(h, ModelHandle) and h.version == "v1"
        assert h.known_user("u0") and not h.known_user("nobody")
        recs = h.recommend(user_id="u0", n=5)
        assert recs or not self.known_users_get_items
        assert all(isinstance(i, str) and isinstance(s, float) for i, s in recs)
        seen = set(model.item_ids_.to_ids(model.user_items_[0].indices))
        assert not seen & {i for i, _ in recs}
        # unknown user = cold user; unknown history ids are ignored
        cold = h.recommend(user_id="nobody", history=[*self.history, "no-such-item"], n=5)
        assert cold == h.recommend(history=list(self.history), n=5)
        if cold:
            first = cold[0][0]
            assert first not in {i for i, _ in h.recommend(history=list(self.history), n=5,
                                                             exclude={first})}
        only_b = h.recommend(user_id="u0", n=12, category=("電子",), filter_seen=False)
        assert all(i.startswith("b") for i, _ in only_b)
        assert h.similar("no-such-item") == []
        scored = h.score_items(["a4", "b4", "zzz"], user_id="u0")
        assert set(scored) <= {"a4", "b4"}
