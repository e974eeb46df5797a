"""Fast inference for serving: structures a model builds of its own arrays, giving the answers
the model's own code gives, faster.

A model offers one through :meth:`models.base.Recommender.serving_index`; the id-level
:class:`models.ModelHandle` asks it first and the model itself when it declines (returns
None), so callers see one contract either way — the way ``implicit``'s approximate
nearest-neighbour wrappers keep ``recommend``.

* :class:`FactorIndex` (ALS, BPR): a known user's top items, ``item_factors @ user``, scored by
  decreasing item norm until the bound ``|u|·|i|`` of the rest cannot beat the k-th best
  (exact), or as one slice of a category-sorted copy of the factors; a user's scores of given
  items.
* :class:`NeighbourIndex` (item-kNN, bought together): a row of the sparse item-item matrix,
  and the ``history`` source's compiled loop over several rows (:mod:`models.kernels`).
* :class:`ListCache`: the lists of non-personal models (trending, popularity, new arrivals),
  computed once per (depth, category) and version.

The compiled kernels are imported with the first index built (numba compiles or loads them
then), so importing this module stays cheap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from models.arrays import shared_array
from models.storage import id_list
from models.vocab import SortedIds, Vocabulary

if TYPE_CHECKING:
    import scipy.sparse as sp

Scored = list[tuple[str, float]]
NO_INDICES = np.zeros(0, np.int64)
"""An empty index array (no exclusions) for the indexes and their callers; never written."""


def _kernels() -> ModuleType:
    from models import kernels  # numba: imported (and compiled or loaded) with the first index

    return kernels


def _positions(order: np.ndarray) -> np.ndarray:
    """Each original row's position in ``rows[order]``."""
    pos = np.empty_like(order)
    pos[order] = np.arange(len(order))
    return pos


class ServingIndex:
    """The calls an index may answer; each returns None when this index does not serve it."""

    def __init__(self, item_ids: Vocabulary) -> None:
        self.item_index = item_ids
        self.item_ids: list[str] = id_list(item_ids)

    def _pairs(self, ids: np.ndarray, scores: np.ndarray) -> Scored:
        return list(zip(map(self.item_ids.__getitem__, ids.tolist()), scores.tolist(),
                        strict=True))

    def user_top(
        self, user_id: str, n: int, exclude: Iterable[str], category: Sequence[str] | None
    ) -> Scored | None:
        """A known user's top ``n`` items (seen items eligible), or None."""
        return None

    def user_scores(self, user_id: str, item_ids: Sequence[str]) -> dict[str, float] | None:
        """A known user's scores of the given items, or None."""
        return None

    def neighbours(self, item_id: str, n: int, exclude: Iterable[str]) -> Scored | None:
        """The items most similar to ``item_id``, or None."""
        return None


class FactorIndex(ServingIndex):
    """A factor model's user × item scores (see the module doc)."""

    first_chunk = 4096
    """Items scored in the first step of the pruned top-k before calls have taught it more."""

    def __init__(
        self,
        user_factors: np.ndarray,
        item_factors: np.ndarray,
        *,
        user_ids: Vocabulary | SortedIds,
        item_ids: Vocabulary,
        categories: Sequence[str] | None,
        in_category: Callable[[Sequence[str]], np.ndarray],
        cache: Path | None = None,
    ) -> None:
        super().__init__(item_ids)
        self._kernels = _kernels()
        self.user_ids = user_ids
        self.users = np.asarray(user_factors)
        self.items = np.asarray(item_factors)
        self.in_category = in_category
        # Items by decreasing factor norm: a user's score for item i is at most |u|·|i|, so
        # scoring can stop once the k-th best beats that bound for the rest (exact top-k;
        # item norms are very skewed, so ~10% of the items get scored).
        items = np.asarray(self.items, dtype=np.float32)
        norms = np.linalg.norm(items, axis=1)
        self._order = np.argsort(-norms, kind="stable")
        self._rank = _positions(self._order)
        self._by_norm = shared_array(cache, "items_by_norm", lambda: items[self._order])
        self._norms = norms[self._order]
        self._needed = float(self.first_chunk)
        if len(items):  # compile now, not in the first request
            self._pruned_top(self._by_norm[0], 1, ())
            self._needed = float(self.first_chunk)
        # Items sorted by category path: every category (and every prefix of one) is a
        # contiguous run of rows, scored as a slice instead of gathering its rows first.
        self._cat_order: np.ndarray | None = None
        if categories is not None and len(categories) == len(items):
            paths = sorted(set(categories), key=lambda c: tuple(c.split(" > ")))
            rank = {c: r for r, c in enumerate(paths)}
            cat_order = np.argsort(
                np.fromiter((rank[c] for c in categories), np.int64, len(categories)),
                kind="stable",
            )
            self._cat_order = cat_order
            self._cat_pos = _positions(cat_order)
            self._by_cat = shared_array(cache, "items_by_category", lambda: items[cat_order])
        self._spans: dict[tuple[str, ...], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def user_top(
        self, user_id: str, n: int, exclude: Iterable[str], category: Sequence[str] | None
    ) -> Scored | None:
        u = self.user_ids.index(user_id)
        if u < 0:
            return None
        users, items = self.users, self.items
        if not category:
            return self._pruned_top(np.asarray(users[u], dtype=np.float32), n, exclude)
        excl = self.item_index.indices(list(exclude)) if exclude else None
        excl = excl[excl >= 0] if excl is not None else None
        lo, hi = self._span(tuple(category))
        if lo >= 0:  # a slice of the category-sorted copy
            if hi == lo:
                return []
            assert self._cat_order is not None
            cand = self._cat_order[lo:hi]
            scores = self._by_cat[lo:hi] @ users[u]
            if excl is not None and excl.size:
                pos = self._cat_pos[excl] - lo
                scores[pos[(pos >= 0) & (pos < hi - lo)]] = -np.inf
        else:
            cand = self.in_category(category)
            if cand.size == 0:
                return []
            scores = items[cand] @ users[u]
            if excl is not None and excl.size:
                pos = np.searchsorted(cand, excl)
                pos = pos[(pos < cand.size) & (cand[np.minimum(pos, cand.size - 1)] == excl)]
                scores[pos] = -np.inf
        k = min(n, scores.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[np.isfinite(scores[top])]
        return self._pairs(cand[top], scores[top])

    def _span(self, category: tuple[str, ...]) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of the category in the category-sorted copy; ``(-1, -1)`` when
        there is no such copy (the caller gathers the category's rows instead)."""
        if self._cat_order is None:
            return -1, -1
        got = self._spans.get(category)
        if got is None:
            cand = self.in_category(category)
            pos = self._cat_pos[cand]
            lo, hi = (int(pos.min()), int(pos.max()) + 1) if cand.size else (0, 0)
            got = (lo, hi) if hi - lo == cand.size else (-1, -1)
            with self._lock:
                if len(self._spans) >= 4096:  # categories asked for that do not exist
                    self._spans.clear()
                self._spans[category] = got
        return got

    def _pruned_top(self, u: np.ndarray, n: int, exclude: Iterable[str]) -> Scored:
        """Exact top ``n`` of ``items @ u``, scoring items by decreasing norm until the bound
        ``|u|·|i|`` of the rest cannot beat the current n-th best
        (:func:`models.kernels.pruned_top`).

        The first step scores about as many items as recent calls needed (a running average
        of the exact stopping point, plus a margin), so most calls take one matrix-vector
        product of a few thousand rows; each further step adds half as many again."""
        k = min(n, len(self._by_norm))
        if k <= 0:
            return []
        excl = self.item_index.indices(exclude) if exclude else None
        excl_pos = np.sort(self._rank[excl[excl >= 0]]) if excl is not None else NO_INDICES
        step = max(k + excl_pos.size, int(self._needed * 1.25) + 256)
        u = np.array(u, dtype=np.float32)  # always a fresh array: one compiled variant
        items, scores, needed = self._kernels.pruned_top(
            self._by_norm, self._norms, self._order, u, k, excl_pos, step
        )
        if needed >= 0:
            self._needed = 0.95 * self._needed + 0.05 * needed
        return self._pairs(items, scores)

    def user_scores(self, user_id: str, item_ids: Sequence[str]) -> dict[str, float] | None:
        u = self.user_ids.index(user_id)
        if u < 0:
            return None
        idx = self.item_index.indices(item_ids)
        ok = idx >= 0
        scores = self.items[idx[ok]] @ self.users[u]
        return {
            i: float(v)
            for i, v in zip(
                [i for i, k in zip(item_ids, ok.tolist(), strict=True) if k],
                scores.tolist(),
                strict=True,
            )
        }


class NeighbourIndex(ServingIndex):
    """Rows of a sparse item-item matrix (see the module doc). ``warm``: compile the history
    kernel now rather than in the first request (for the model the history source reads)."""

    def __init__(self, matrix: sp.csr_matrix, item_ids: Vocabulary, *, warm: bool) -> None:
        super().__init__(item_ids)
        self._kernels = _kernels()
        # plain ndarray views of the (memory-mapped) CSR arrays: slicing a np.memmap costs a
        # subclass round trip per call
        self._indptr = np.asarray(matrix.indptr)
        self._indices = np.asarray(matrix.indices)
        self._data = np.asarray(matrix.data)
        if warm and len(self._indptr) > 1:
            self.history_top(np.zeros(1, np.int64), NO_INDICES, NO_INDICES, 1, 0.5)

    def history_top(
        self, anchors: np.ndarray, exclude: np.ndarray, seen: np.ndarray, n: int, decay: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """:func:`models.kernels.history_top` on this matrix's rows."""
        return self._kernels.history_top(  # type: ignore[no-any-return]
            self._indptr, self._indices, self._data, anchors, exclude, seen, n, decay
        )

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ``i``: (item indices, scores), stored order."""
        lo, hi = int(self._indptr[i]), int(self._indptr[i + 1])
        return self._indices[lo:hi], self._data[lo:hi]

    def neighbours(self, item_id: str, n: int, exclude: Iterable[str]) -> Scored | None:
        i = self.item_index.index(item_id)
        if i < 0:
            return []
        ids, scores = self.row(i)
        ids, scores = ids.astype(np.int64), scores.astype(np.float32, copy=False)
        keep = (ids != i) & (scores > 0)
        excl = set(exclude)
        if excl:
            bad = self.item_index.indices(list(excl))
            keep &= ~np.isin(ids, bad)
        ids, scores = ids[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")[:n]
        return self._pairs(ids[order], scores[order])


class ListCache:
    """A non-personal model's lists, one per (depth, category): one list serves every ``n``
    up to its depth (the next power of two, at least 256)."""

    def __init__(self, limit: int = 512) -> None:
        self._lists: OrderedDict[tuple[int, tuple[str, ...] | None], Scored] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def top(
        self, n: int, category: Sequence[str] | None, compute: Callable[[int], Scored]
    ) -> Scored:
        depth = max(256, 1 << (max(n, 1) - 1).bit_length())
        key = (depth, tuple(category) if category else None)
        with self._lock:
            got = self._lists.get(key)
            if got is not None:
                self._lists.move_to_end(key)
                return got[:n]
        got = compute(depth)
        with self._lock:
            self._lists[key] = got
            if len(self._lists) > self._limit:
                self._lists.popitem(last=False)
        return got[:n]
