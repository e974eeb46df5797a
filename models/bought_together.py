"""Frequently bought together: items that share baskets more often than chance.

A basket is a session (``context.session_id``) — or, for events without one, a user's day.
Only basket-building events count (purchase and add-to-cart by default). For a pair of items
with ``support`` shared baskets out of ``N``, ``lift = support × N / (count_a × count_b)``;
pairs below ``min_support`` are dropped and each item keeps its ``neighbors`` best partners.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp

from data.models import EVENT_TYPES
from models.base import IdsScores, Recommender
from models.errors import MissingInputError
from models.fast import NeighbourIndex

if TYPE_CHECKING:
    from models.interactions import Interactions

DAY = 86_400


@dataclass(frozen=True)
class BoughtTogetherParams:
    types: tuple[str, ...] = ("purchase", "add_to_cart")
    min_support: int = 2
    """Shared baskets a pair needs before it counts."""
    measure: Literal["lift", "confidence", "support"] = "lift"
    neighbors: int = 50


class BoughtTogether(Recommender):
    algorithm = "bought_together"
    Params = BoughtTogetherParams
    positive_only = True
    _learned = ("association_",)

    def __init__(self, params: BoughtTogetherParams | None = None, **kwargs: object) -> None:
        if isinstance(kwargs.get("types"), list):
            kwargs["types"] = tuple(kwargs["types"])  # type: ignore[arg-type]
        super().__init__(params, **kwargs)
        bad = set(self.params.types) - set(EVENT_TYPES)
        if bad:
            raise ValueError(f"types: unknown event types {sorted(bad)}")

    def _fit(self, data: Interactions) -> None:
        ev = data.events
        if ev is None:
            raise MissingInputError(
                "bought_together needs the individual events (build_interactions(keep_events=True))"
            )
        n_items = data.matrix.shape[1]
        codes = [EVENT_TYPES.index(t) for t in self.params.types]
        sel = np.isin(ev.type, codes)
        if not sel.any():
            raise MissingInputError(
                f"bought_together needs baskets: no {' or '.join(self.params.types)} events")
        basket = ev.basket[sel].astype(np.int64)
        user = ev.user[sel].astype(np.int64)
        day = (ev.ts[sel] // DAY).astype(np.int64)
        no_session = basket < 0
        # Without a session, a user's day is the basket (kept apart from session codes).
        key = np.where(no_session, -(user * 100_000 + (day - day.min() if day.size else 0)) - 1,
                       basket)
        _, b = np.unique(key, return_inverse=True)
        items = ev.item[sel]
        n_baskets = int(b.max()) + 1 if b.size else 0
        x = sp.csr_matrix((np.ones(len(items), np.float32), (b, items)),
                          shape=(n_baskets, n_items))
        x.sum_duplicates()
        x.data[:] = 1.0
        count = np.asarray(x.sum(axis=0)).ravel()
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        co.data[co.data < self.params.min_support] = 0
        co.eliminate_zeros()
        coo = co.tocoo()
        support = coo.data.astype(np.float64)
        if self.params.measure == "lift":
            score = support * n_baskets / (count[coo.row] * count[coo.col])
        elif self.params.measure == "confidence":
            score = support / count[coo.row]
        else:
            score = support
        self.association_ = _top_per_row(
            sp.csr_matrix((score.astype(np.float32), (coo.row, coo.col)), shape=co.shape),
            self.params.neighbors,
        )

    def serving_index(self, cache: Path | None = None) -> NeighbourIndex:
        """Association rows: the items bought with an item, straight from the matrix."""
        return NeighbourIndex(self.association_, self.item_ids_, warm=False)

    def _scores(self, rows: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        x = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        x.data[:] = 1.0
        return (x @ self.association_).toarray()

    def _similar(self, item: int, n: int) -> IdsScores:
        row = self.association_[item]
        order = np.argsort(-row.data, kind="stable")[:n]
        return row.indices[order].astype(np.int64), row.data[order]


def _top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest entries of each row."""
    m = m.tocsr()
    m.sort_indices()
    lens = np.diff(m.indptr)
    if lens.size == 0 or lens.max() <= k:
        return m
    keep = np.zeros(m.nnz, dtype=bool)
    for r in np.flatnonzero(lens > 0):
        lo, hi = m.indptr[r], m.indptr[r + 1]
        if hi - lo <= k:
            keep[lo:hi] = True
        else:
            keep[lo + np.argpartition(-m.data[lo:hi], k - 1)[:k]] = True
    coo = m.tocoo()
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)
