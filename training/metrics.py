"""Ranking metrics, one per function, all on one signature.

``recommended``: ``(users, k')`` item indices, best first, ``-1`` for an empty slot.
``relevant``: CSR ``(users, items)``, non-zero = relevant, one row per row of
``recommended``. Each metric averages over the rows given; callers pass only users with at
least one relevant item (see :func:`evaluable_users`). Only the first ``k`` columns count.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def evaluable_users(relevant: sp.csr_matrix) -> np.ndarray:
    """Rows with at least one relevant item."""
    return np.flatnonzero(np.diff(relevant.indptr) > 0)


def hits(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> np.ndarray:
    """Boolean ``(users, k)``: is the item at each rank relevant?"""
    rec = np.asarray(recommended)[:, :k].astype(np.int64)
    n_items = relevant.shape[1]
    rows = np.repeat(np.arange(rec.shape[0], dtype=np.int64), rec.shape[1]).reshape(rec.shape)
    rec_codes = np.where(rec >= 0, rows * n_items + rec, -1)
    rel = relevant.tocsr()
    rel_rows = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    rel_codes = rel_rows * n_items + rel.indices
    h = np.isin(rec_codes, rel_codes) & (rec >= 0)
    if h.shape[1] < k:
        h = np.pad(h, ((0, 0), (0, k - h.shape[1])))
    return h


def _n_relevant(relevant: sp.csr_matrix) -> np.ndarray:
    return np.diff(relevant.tocsr().indptr).astype(np.float64)


def precision_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Share of the k slots holding a relevant item."""
    return float(hits(recommended, relevant, k).sum(axis=1).mean() / k)


def recall_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Share of each user's relevant items found in the top k."""
    h = hits(recommended, relevant, k).sum(axis=1)
    return float(np.mean(h / np.maximum(_n_relevant(relevant), 1)))


def hit_rate_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Share of users with at least one relevant item in the top k."""
    return float(hits(recommended, relevant, k).any(axis=1).mean())


def ndcg_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Binary-relevance NDCG: DCG of the list over the DCG of a perfect list."""
    h = hits(recommended, relevant, k)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (h * disc).sum(axis=1)
    ideal_n = np.minimum(_n_relevant(relevant), k).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[ideal_n]
    return float(np.mean(np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1), 0.0)))


def map_at_k(recommended: np.ndarray, relevant: sp.csr_matrix, k: int) -> float:
    """Mean average precision: precision at each hit, summed, over min(k, #relevant)."""
    h = hits(recommended, relevant, k).astype(np.float64)
    prec = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    denom = np.maximum(np.minimum(_n_relevant(relevant), k), 1)
    return float(np.mean((prec * h).sum(axis=1) / denom))


def catalog_coverage(recommended: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalog that appears in at least one user's top k."""
    rec = np.asarray(recommended)[:, :k]
    return float(np.unique(rec[rec >= 0]).size / max(n_items, 1))


def popularity_bias(recommended: np.ndarray, item_popularity: np.ndarray, k: int) -> float:
    """Average popularity percentile (0 = least, 1 = most popular item) of recommended items.

    ``item_popularity``: one number per item (e.g. distinct training users). 0.5 is what a
    popularity-blind random list gets; a popularity baseline is near 1.
    """
    rec = np.asarray(recommended)[:, :k]
    pop = np.asarray(item_popularity, dtype=np.float64)
    # Percentile by rank, ties sharing their mean rank.
    order = np.argsort(pop, kind="stable")
    ranks = np.empty(len(pop))
    ranks[order] = np.arange(len(pop))
    _, inv, counts = np.unique(pop, return_inverse=True, return_counts=True)
    mean_rank = np.bincount(inv, weights=ranks) / counts
    pct = mean_rank[inv] / max(len(pop) - 1, 1)
    valid = rec >= 0
    if not valid.any():
        return float("nan")
    return float(pct[rec[valid]].mean())


RANKING_METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "hit_rate": hit_rate_at_k,
}
"""Name → function, for tables and plots."""
