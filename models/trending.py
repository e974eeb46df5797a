"""Trending (time-decayed interaction counts) and new arrivals (newest catalog items).

Both rank the same way for everyone; per-category lists come from the ``category`` (or
``candidates``) restriction every model supports, so "trending in 女裝" is the global
decayed counts restricted to that category.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from models.base import Recommender
from models.errors import MissingInputError

if TYPE_CHECKING:
    from models.interactions import Interactions

DAY = 86_400.0


@dataclass(frozen=True)
class TrendingParams:
    half_life_days: float = 3.0
    """An interaction this many days before the end of the data counts half."""
    weighted: bool = True
    """Count each event with its type weight (a purchase counts more than a view)."""


class Trending(Recommender):
    algorithm = "trending"
    Params = TrendingParams
    personalized = False
    positive_only = True
    _learned = ("trend_",)

    def _fit(self, data: Interactions) -> None:
        ev = data.events
        if ev is None:
            raise MissingInputError(
                "trending needs the individual events (build_interactions(keep_events=True))"
            )
        age = np.clip(data.reference_time - ev.ts, 0.0, None)
        w = np.exp2(-age / (self.params.half_life_days * DAY))
        if self.params.weighted:
            w = w * ev.weight
        self.trend_ = np.bincount(ev.item, weights=w, minlength=data.matrix.shape[1]).astype(
            np.float32
        )
        self.reference_time_ = float(data.reference_time)

    def _extra_state(self) -> dict[str, Any]:
        return {"reference_time": self.reference_time_}

    def _set_extra_state(self, state: dict[str, Any]) -> None:
        self.reference_time_ = float(state.get("reference_time", 0.0))

    def _scores(self, rows: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.trend_, (rows.shape[0], self.n_items)).copy()


@dataclass(frozen=True)
class NewArrivalsParams:
    max_age_days: float | None = 90.0
    """Items created longer ago than this (before the end of the data) are not new."""


class NewArrivals(Recommender):
    """Newest items first (``created_at`` from the catalog); score = 1 / (1 + age in days)."""

    algorithm = "new_arrivals"
    Params = NewArrivalsParams
    personalized = False
    positive_only = True
    _learned = ("freshness_",)

    def _fit(self, data: Interactions) -> None:
        if data.catalog is None:
            raise MissingInputError("new_arrivals needs the catalog (items file) with created_at")
        age = (data.reference_time - data.catalog.created_at) / DAY
        fresh = 1.0 / (1.0 + np.clip(age, 0.0, None))
        fresh[~np.isfinite(fresh)] = 0.0
        if self.params.max_age_days is not None:
            fresh[~(age <= self.params.max_age_days)] = 0.0
        self.freshness_ = fresh.astype(np.float32)

    def _scores(self, rows: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.freshness_, (rows.shape[0], self.n_items)).copy()
