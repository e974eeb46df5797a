"""Bayesian personalized ranking (``implicit``'s CPU trainer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from models._implicit import (
    ImplicitFactorModel,
    factor_top,
    resolve_threads,
    single_threaded_blas,
)
from models.base import IdsScores


@dataclass(frozen=True)
class BPRParams:
    factors: int = 64
    learning_rate: float = 0.05
    regularization: float = 0.01
    iterations: int = 100
    num_threads: int = 0
    random_state: int = 42


class BPR(ImplicitFactorModel):
    """Pairwise ranking factorization. A cold user is the weighted mean of their items'
    factors (``implicit``'s BPR has no ``recalculate_user``)."""

    algorithm = "bpr"
    Params = BPRParams

    def _implicit_model(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        p = self.params
        with single_threaded_blas():
            return BayesianPersonalizedRanking(
                factors=p.factors, learning_rate=p.learning_rate,
                regularization=p.regularization, iterations=p.iterations,
                num_threads=resolve_threads(p.num_threads), random_state=p.random_state,
            )

    def _fold_in(self, rows: sp.csr_matrix) -> np.ndarray:
        # Item factors end with the item bias; users carry a constant 1 there.
        weights = sp.csr_matrix(rows, dtype=np.float32)
        sums = np.asarray(weights.sum(axis=1)).ravel()
        sums[sums == 0] = 1.0
        vecs = np.asarray(weights @ self.item_factors_[:, :-1]) / sums[:, None]
        return np.hstack([vecs, np.ones((rows.shape[0], 1))]).astype(self.item_factors_.dtype)

    def _top(
        self,
        rows: sp.csr_matrix,
        users: np.ndarray | None,
        n: int,
        filter_seen: bool,
        exclude: np.ndarray | None,
        candidates: np.ndarray | None,
    ) -> IdsScores:
        if users is not None:
            with single_threaded_blas():
                return self._model.recommend(  # type: ignore[no-any-return]
                    users, rows, N=n, filter_already_liked_items=filter_seen,
                    filter_items=exclude, items=candidates,
                )
        return factor_top(self.item_factors_, self._fold_in(rows), rows, n, filter_seen,
                          exclude, candidates, resolve_threads(self.params.num_threads))

    def _similar(self, item: int, n: int) -> IdsScores:
        with single_threaded_blas():
            return self._model.similar_items(item, N=min(n, self.n_items))  # type: ignore[no-any-return]
