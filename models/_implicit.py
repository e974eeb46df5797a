"""Shared plumbing for models built on ``implicit``: thread pools and factor top-k."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from models.base import Recommender
from models.fast import FactorIndex

if TYPE_CHECKING:
    from models.interactions import Interactions


def resolve_threads(num_threads: int) -> int:
    """``0`` means one thread per core, as in ``implicit``."""
    return num_threads if num_threads > 0 else (os.cpu_count() or 1)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """``implicit`` runs its own thread pool; BLAS must not add threads inside it.

    Limiting BLAS to one thread here (threadpoolctl) is what ``implicit`` asks for, and it
    is why its OpenBLAS warning does not fire: the warning checks this very setting.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def restrict_columns(rows: sp.csr_matrix, columns: np.ndarray) -> sp.csr_matrix:
    """``rows`` with only the (sorted) ``columns``, renumbered 0..len(columns)-1."""
    coo = rows.tocoo()
    pos = np.clip(np.searchsorted(columns, coo.col), 0, len(columns) - 1)
    ok = columns[pos] == coo.col
    return sp.csr_matrix(
        (coo.data[ok], (coo.row[ok], pos[ok])), shape=(rows.shape[0], len(columns))
    )


def factor_top(
    item_factors: np.ndarray,
    user_vectors: np.ndarray,
    rows: sp.csr_matrix,
    n: int,
    filter_seen: bool,
    exclude: np.ndarray | None,
    candidates: np.ndarray | None,
    num_threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of ``user_vectors @ item_factors.T`` with ``implicit``'s own top-k kernel."""
    from implicit.cpu.topk import topk

    factors = item_factors
    filt = rows if filter_seen else None
    if candidates is not None:
        factors = item_factors[candidates]
        if filt is not None:
            filt = restrict_columns(filt, candidates)
        n = min(n, len(candidates))
    ids, scores = topk(
        np.ascontiguousarray(factors),
        np.ascontiguousarray(user_vectors, dtype=factors.dtype),
        n,
        filter_query_items=filt,
        filter_items=exclude,
        num_threads=num_threads,
    )
    if candidates is not None:
        ids = np.where(ids >= 0, candidates[np.clip(ids, 0, None)], -1)
    return ids, scores


class ImplicitFactorModel(Recommender):
    """Fit and reload for the factor models of ``implicit`` (ALS, BPR).

    A subclass builds its unfitted ``implicit`` model in ``_implicit_model()``; fitting keeps
    the learned factors as ``user_factors_`` / ``item_factors_`` and re-attaches them to a
    fresh ``implicit`` model after loading.
    """

    _learned = ("user_factors_", "item_factors_")

    def _implicit_model(self) -> Any:
        raise NotImplementedError

    def _fit(self, data: Interactions) -> None:
        model = self._implicit_model()
        with single_threaded_blas():
            model.fit(data.matrix, show_progress=False)
        self._model = model
        self.user_factors_ = model.user_factors
        self.item_factors_ = model.item_factors

    def _after_load(self) -> None:
        model = self._implicit_model()
        model.user_factors = np.ascontiguousarray(self.user_factors_)
        model.item_factors = np.ascontiguousarray(self.item_factors_)
        self._model = model

    def serving_index(self, cache: Path | None = None) -> FactorIndex:
        """A known user's top items and scores straight from the factors."""
        return FactorIndex(
            self.user_factors_,
            self.item_factors_,
            user_ids=self.user_ids_,
            item_ids=self.item_ids_,
            categories=self.item_categories_,
            in_category=self.items_in_category,
            cache=cache,
        )
