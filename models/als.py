"""Alternating least squares for implicit feedback (``implicit``'s CPU solver)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from models._implicit import ImplicitFactorModel, resolve_threads, single_threaded_blas
from models.base import IdsScores


@dataclass(frozen=True)
class ALSParams:
    factors: int = 64
    regularization: float = 0.05
    alpha: float = 2.0
    """Confidence scale: implicit uses ``1 + alpha × weight``."""
    iterations: int = 15
    use_cg: bool = True
    num_threads: int = 0
    """0: one per core."""
    random_state: int = 42


class ALS(ImplicitFactorModel):
    """Matrix factorization; cold users are folded in with ``recalculate_user``."""

    algorithm = "als"
    Params = ALSParams

    def _implicit_model(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        p = self.params
        with single_threaded_blas():
            return AlternatingLeastSquares(
                factors=p.factors, regularization=p.regularization, alpha=p.alpha,
                iterations=p.iterations, use_cg=p.use_cg,
                num_threads=resolve_threads(p.num_threads), random_state=p.random_state,
            )

    def _top(
        self,
        rows: sp.csr_matrix,
        users: np.ndarray | None,
        n: int,
        filter_seen: bool,
        exclude: np.ndarray | None,
        candidates: np.ndarray | None,
    ) -> IdsScores:
        cold = users is None
        ids_arg = np.arange(rows.shape[0]) if cold else users
        with single_threaded_blas():
            return self._model.recommend(  # type: ignore[no-any-return]
                ids_arg, rows, N=n, filter_already_liked_items=filter_seen,
                filter_items=exclude, items=candidates, recalculate_user=cold,
            )

    def _similar(self, item: int, n: int) -> IdsScores:
        with single_threaded_blas():
            return self._model.similar_items(item, N=min(n, self.n_items))  # type: ignore[no-any-return]
