"""Recommendation models, and the id-based handle serving uses.

Serving code talks to a :class:`ModelHandle`; it never sees matrix indices::

    from models import load_model
    from models.registry import Registry

    reg = Registry(settings.models_dir)
    version = reg.current_version("als")          # cheap: reads one small file; poll it
    handle = load_model(reg.path("als", version))   # or reg.load_current("als")
    handle.known_user("u42")                        # True if trained on u42's events
    handle.recommend(user_id="u42", n=10)           # [("i7", 0.93), ...]
    handle.recommend(history=["i1", "i9"], n=10)   # cold user: recently seen items
    handle.recommend(user_id="u42", history=["i3"], exclude={"i5"})  # both
    handle.similar("i7", n=10)                      # item to item
    handle.score_items(user_id="u42", item_ids=["i1", "i2"])  # re-rank search hits

Rules of the handle: unknown item ids in ``history`` / ``exclude`` are ignored; an unknown
``user_id`` is treated as a cold user (``history`` only); ``filter_seen`` (default on) drops
items in the user's training row and in ``history``; ``candidates`` (item ids) restricts the
ranking, ``category`` (a path prefix such as ``("服裝", "女裝")``) too, when the model was trained
with the catalog. Lists may be shorter than ``n`` (and empty) when the model has no evidence.
Non-personalized models (``popularity``, ``trending``, ``new_arrivals``) ignore the user.

Serving builds its handles with :meth:`ModelHandle.for_serving`: the model's
:meth:`~models.base.Recommender.serving_index` (:mod:`models.fast`) answers the hot calls it
can — with the answers the model's own code gives — and the lists of non-personal models are
cached per version; the handle's contract is the same either way.

Algorithms (``algorithm`` in configs and manifests): ``als``, ``bpr``, ``item_knn``, ``ease``,
``popularity``, ``trending``, ``new_arrivals``, ``bought_together``, ``content``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.errors import ModelLoadError
from models.fast import ListCache, Scored, ServingIndex

if TYPE_CHECKING:
    from models.base import Recommender

# Imported on demand so that importing this package stays cheap.
ALGORITHMS: dict[str, str] = {
    "als": "models.als:ALS",
    "bpr": "models.bpr:BPR",
    "item_knn": "models.item_knn:ItemKNN",
    "ease": "models.ease:EASE",
    "popularity": "models.popularity:Popularity",
    "trending": "models.trending:Trending",
    "new_arrivals": "models.trending:NewArrivals",
    "bought_together": "models.bought_together:BoughtTogether",
    "content": "models.content:ContentSimilarity",
}


def model_class(algorithm: str) -> type[Recommender]:
    """The class implementing ``algorithm``; a clear error for an unknown name."""
    try:
        target = ALGORITHMS[algorithm]
    except KeyError:
        raise ModelLoadError(
            f"unknown algorithm {algorithm!r}; choose one of {', '.join(sorted(ALGORITHMS))}"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def create_model(algorithm: str, **params: Any) -> Recommender:
    """A fresh, unfitted model; unknown parameters raise ``TypeError`` naming them."""
    cls = model_class(algorithm)
    return cls(cls.Params(**params))


def load_model(folder: str | os.PathLike[str], version: str | None = None) -> ModelHandle:
    """Load any saved model folder into an id-based :class:`ModelHandle`."""
    from models.base import read_model_meta

    meta = read_model_meta(Path(folder))
    model = model_class(meta["algorithm"]).load(folder)
    return ModelHandle(model, version=version)


class ModelHandle:
    """A fitted model that speaks item and user ids. Thread-safe for reading.

    ``name``: the registry name it serves under (default: the algorithm). ``index`` and
    ``lists``: the fast paths of :meth:`for_serving`; without them every call asks the model.
    """

    def __init__(
        self,
        model: Recommender,
        version: str | None = None,
        *,
        name: str | None = None,
        index: ServingIndex | None = None,
        lists: ListCache | None = None,
    ) -> None:
        model._check_fitted()
        self.model = model
        self.version = version
        self.name = name if name is not None else model.algorithm
        self.index = index
        self.lists = lists

    @classmethod
    def for_serving(
        cls, model: Recommender, *, name: str, version: str, cache: Path | None = None
    ) -> ModelHandle:
        """A handle with the model's serving index and, for a non-personal model, a cache of
        its lists. ``cache``: a folder for the index's derived arrays (shared by processes)."""
        lists = ListCache() if not model.personalized else None
        return cls(model, version, name=name, index=model.serving_index(cache), lists=lists)

    def __repr__(self) -> str:
        return f"ModelHandle({self.algorithm!r}, version={self.version!r})"

    @property
    def knows_users(self) -> bool:
        """Loaded with its user side (serving loads only one model's)."""
        return len(self.model.user_ids_) > 0

    @property
    def algorithm(self) -> str:
        return self.model.algorithm

    @property
    def personalized(self) -> bool:
        return self.model.personalized

    def known_user(self, user_id: str) -> bool:
        """True if the model was trained on this user's interactions."""
        return self.model.user_ids_.index(user_id) >= 0

    knows_user = known_user

    def known_item(self, item_id: str) -> bool:
        return self.model.item_ids_.index(item_id) >= 0

    def _items(self, ids: Iterable[str]) -> np.ndarray:
        idx = self.model.item_ids_.indices(list(ids))
        return idx[idx >= 0]

    def _candidates(
        self, candidates: Collection[str] | None, category: Sequence[str] | None
    ) -> np.ndarray | None:
        cand = None if candidates is None else self._items(candidates)
        if category:
            cat = self.model.items_in_category(category)
            cand = cat if cand is None else np.intersect1d(cand, cat)
        return cand

    def _pairs(self, ids: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
        keep = ids >= 0
        return list(zip(self.model.item_ids_.to_ids(ids[keep]),
                        (float(s) for s in scores[keep]), strict=True))

    def recommend(
        self,
        user_id: str | None = None,
        history: Sequence[str] = (),
        n: int = 10,
        exclude: Collection[str] = (),
        *,
        candidates: Collection[str] | None = None,
        category: Sequence[str] | None = None,
        filter_seen: bool = True,
    ) -> list[tuple[str, float]]:
        """Top ``n`` ``(item_id, score)`` for a user id and/or a recent history of item ids."""
        if not history and candidates is None:
            if user_id is not None and not filter_seen and self.index is not None:
                got = self.index.user_top(user_id, n, exclude, category)
                if got is not None:
                    return got
            if user_id is None and not exclude and self.lists is not None:
                return self.lists.top(
                    n, category, lambda k: self._recommend(None, (), k, (), None, category, True)
                )
        return self._recommend(user_id, history, n, exclude, candidates, category, filter_seen)

    def _recommend(
        self,
        user_id: str | None,
        history: Sequence[str],
        n: int,
        exclude: Collection[str],
        candidates: Collection[str] | None,
        category: Sequence[str] | None,
        filter_seen: bool,
    ) -> Scored:
        m = self.model
        exc = self._items(exclude) if exclude else None
        cand = self._candidates(candidates, category)
        hist = self._items(history)
        uidx = m.user_ids_.index(user_id) if user_id is not None else -1
        if uidx >= 0:
            extra = m.history_rows([hist]) if hist.size else None
            ids, scores = m.recommend(uidx, n, history=extra, filter_seen=filter_seen,
                                      exclude=exc, candidates=cand)
        else:
            ids, scores = m.recommend_cold(hist, n, filter_seen=filter_seen, exclude=exc,
                                           candidates=cand)
        return self._pairs(ids, scores)

    def recommend_many(
        self, user_ids: Sequence[str], n: int = 10, *, filter_seen: bool = True
    ) -> dict[str, list[tuple[str, float]]]:
        """Batch for known users (unknown ids get an empty list): one model call."""
        idx = self.model.user_ids_.indices(user_ids)
        out: dict[str, list[tuple[str, float]]] = {u: [] for u in user_ids}
        known = np.flatnonzero(idx >= 0)
        if known.size:
            ids, scores = self.model.recommend(idx[known], n, filter_seen=filter_seen)
            for row, k in enumerate(known):
                out[user_ids[k]] = self._pairs(ids[row], scores[row])
        return out

    def similar(
        self, item_id: str, n: int = 10, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """Items most similar to ``item_id`` (empty if the model does not know the item)."""
        if self.index is not None:
            got = self.index.neighbours(item_id, n, exclude)
            if got is not None:
                return got
        i = self.model.item_ids_.index(item_id)
        if i < 0:
            return []
        ids, scores = self.model.similar_items(i, n, exclude=self._items(exclude))
        return self._pairs(ids, scores)

    def score_items(
        self,
        item_ids: Sequence[str],
        user_id: str | None = None,
        history: Sequence[str] = (),
    ) -> dict[str, float]:
        """Scores of the given items for a user / history (to re-rank search hits).

        Items the model does not know, or has no evidence for, are left out. A user the
        serving index knows is scored from the learned factors alone; their real-time history
        counts through the profile's affinities instead.
        """
        if self.index is not None and user_id:
            got = self.index.user_scores(user_id, item_ids)
            if got is not None:
                return got
        cand = self._items(item_ids)
        if cand.size == 0:
            return {}
        pairs = self.recommend(user_id, history, n=int(cand.size), candidates=item_ids,
                               filter_seen=False)
        return dict(pairs)
