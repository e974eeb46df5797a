"""Each metric against small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from training import metrics as M

# user 0: list [1, 2, 3, -], relevant {2, 5}: one hit at rank 2
# user 1: list [4, 5, 6, -], relevant {4}:    one hit at rank 1
REC = np.array([[1, 2, 3, -1], [4, 5, 6, -1]])
REL = sp.csr_matrix((np.ones(3), ([0, 0, 1], [2, 5, 4])), shape=(2, 10))


def test_precision() -> None:
    assert M.precision_at_k(REC, REL, 3) == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert M.precision_at_k(REC, REL, 1) == pytest.approx(0.5)


def test_recall() -> None:
    assert M.recall_at_k(REC, REL, 3) == pytest.approx((1 / 2 + 1) / 2)
    assert M.recall_at_k(REC, REL, 1) == pytest.approx((0 + 1) / 2)


def test_hit_rate() -> None:
    assert M.hit_rate_at_k(REC, REL, 1) == pytest.approx(0.5)
    assert M.hit_rate_at_k(REC, REL, 2) == pytest.approx(1.0)


def test_ndcg() -> None:
    u0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))  # hit at rank 2; ideal has 2 hits
    assert M.ndcg_at_k(REC, REL, 3) == pytest.approx((u0 + 1.0) / 2)
    # a padded slot (-1) is never a hit, even at k beyond the list
    assert M.ndcg_at_k(REC, REL, 5) == pytest.approx((u0 + 1.0) / 2)


def test_map() -> None:
    # user 0: precision 1/2 at its hit, over min(3, 2 relevant) = 2 → 0.25; user 1: 1
    assert M.map_at_k(REC, REL, 3) == pytest.approx((0.25 + 1.0) / 2)


def test_coverage() -> None:
    assert M.catalog_coverage(REC, 10, 3) == pytest.approx(0.6)
    assert M.catalog_coverage(REC, 10, 1) == pytest.approx(0.2)


def test_popularity_bias() -> None:
    pop = np.array([0.0, 1.0, 2.0, 3.0])
    assert M.popularity_bias(np.array([[3]]), pop, 1) == pytest.approx(1.0)
    assert M.popularity_bias(np.array([[0, 3]]), pop, 2) == pytest.approx(0.5)
    ties = np.array([5.0, 5.0, 0.0])  # tied items share their mean percentile
    assert M.popularity_bias(np.array([[0]]), ties, 1) == pytest.approx(0.75)


def test_evaluable_users() -> None:
    rel = sp.csr_matrix((np.ones(1), ([2], [0])), shape=(3, 4))
    assert M.evaluable_users(rel).tolist() == [2]
