"""EASE: a closed-form linear item-item model (Steck, 2019), in numpy.

Memory and time grow with the square and cube of the number of items: the model stores a
dense items × items matrix. ``max_items`` (default 20,000: about 1.6 GB of float32 weights
and 3.2 GB while solving) is the documented limit; above it ``fit`` raises
:class:`~models.errors.ModelTooLargeError` — use ``item_knn`` or ``als`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from models.base import Recommender
from models.errors import ModelTooLargeError

if TYPE_CHECKING:
    from models.interactions import Interactions


@dataclass(frozen=True)
class EASEParams:
    l2: float = 200.0
    """Ridge regularization on the item-item weights."""
    binarize: bool = True
    """Fit on 0/1 interactions (as in the paper) rather than on the weights."""
    max_items: int = 20_000


class EASE(Recommender):
    algorithm = "ease"
    Params = EASEParams
    positive_only = True
    _learned = ("weights_",)

    def _fit(self, data: Interactions) -> None:
        n_items = data.matrix.shape[1]
        if n_items > self.params.max_items:
            raise ModelTooLargeError(
                f"EASE supports at most {self.params.max_items:,} items (a dense items × items "
                f"matrix), this data has {n_items:,}; use item_knn or als, or raise max_items "
                "if the machine has the memory (8 × items² bytes while solving)"
            )
        x = sp.csr_matrix(data.matrix, dtype=np.float64)
        if self.params.binarize:
            x.data = np.ones_like(x.data)
        g = (x.T @ x).toarray()
        g[np.diag_indices_from(g)] += self.params.l2
        p = np.linalg.inv(g)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.weights_ = b.astype(np.float32)

    def _scores(self, rows: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        x = sp.csr_matrix(rows, dtype=np.float32)
        if self.params.binarize:
            x = x.copy()
            x.data = np.ones_like(x.data)
        return np.asarray(x @ self.weights_)
