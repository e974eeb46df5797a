"""The baseline: the same list for everyone, items ranked by how many users touched them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp

from models.base import Recommender

if TYPE_CHECKING:
    from models.interactions import Interactions


@dataclass(frozen=True)
class PopularityParams:
    measure: Literal["users", "weight"] = "users"
    """``users``: distinct users per item; ``weight``: summed (decayed) interaction weight."""


class Popularity(Recommender):
    algorithm = "popularity"
    Params = PopularityParams
    personalized = False
    positive_only = True
    _learned = ("popularity_",)

    def _fit(self, data: Interactions) -> None:
        m = data.matrix
        if self.params.measure == "users":
            pop = np.bincount(m.indices, minlength=m.shape[1]).astype(np.float32)
        else:
            pop = np.asarray(m.sum(axis=0), dtype=np.float32).ravel()
        self.popularity_ = pop

    def _scores(self, rows: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (rows.shape[0], self.n_items)).copy()

    def _similar(self, item: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self._top(self.history_rows([np.asarray([item])]), None, n, False, None, None)
