"""The compiled kernels against plain-Python statements of what they compute, on random
small inputs built to have ties, exclusions and cuts."""

from __future__ import annotations

import random

import numpy as np
import pytest
import scipy.sparse as sp

from models import kernels


def _history_reference(m: sp.csr_matrix, anchors: list[int], exclude: set[int], seen: set[int],
                       n: int, decay: float) -> tuple[list[int], list[float], list[int]] | None:
    contrib: dict[int, list[tuple[float, int]]] = {}
    for k, a in enumerate(anchors):
        row = m.getrow(a)
        pairs = [(int(i), float(s)) for i, s in zip(row.indices, row.data, strict=True)
                 if i != a and s > 0 and i not in exclude]
        if not pairs:
            return None
        pairs = sorted(pairs, key=lambda p: -p[1])[:n]  # stable: stored order for ties
        best = max(s for _, s in pairs)
        w = decay**k / best
        for i, s in pairs:
            if i not in seen:
                contrib.setdefault(i, []).append((s * w, k))
    rows = []
    for i, c in contrib.items():
        c.sort(key=lambda vk: (-vk[0], vk[1]))
        total = c[0][0] + sum(v for v, _ in c[1:]) if len(c) > 1 else c[0][0]
        rows.append((-total, i, c[0][1]))
    rows.sort()
    top = rows[:n]
    return [i for _, i, _ in top], [-t for t, _, _ in top], [k for _, _, k in top]


@pytest.mark.parametrize("seed", range(6))
def test_history_top_is_the_plain_statement(seed: int) -> None:
    rnd = random.Random(seed)
    n_items = 60
    dense = np.zeros((n_items, n_items))
    for a in range(n_items):
        for i in rnd.sample(range(n_items), rnd.randint(0, 25)):
            dense[a, i] = rnd.choice([0.5, 0.25, 1.0, -0.5, rnd.random()])  # ties and negatives
    m = sp.csr_matrix(dense)
    checked = cut = 0
    for _ in range(60):
        anchors = rnd.sample(range(n_items), rnd.randint(1, 5))
        exclude = set(rnd.sample(range(n_items), rnd.randint(0, 10)))
        seen = set(anchors) | set(rnd.sample(range(n_items), rnd.randint(0, 10)))
        n = rnd.choice([3, 8, 50])
        want = _history_reference(m, anchors, exclude, seen, n, 0.75)
        items, totals, anchor_of, ok = kernels.history_top(
            m.indptr,
            m.indices,
            m.data,
            np.array(anchors, np.int64),
            np.array(sorted(exclude), np.int64),
            np.array(sorted(seen), np.int64),
            n,
            0.75,
        )
        if want is None:
            assert not ok
            continue
        assert ok
        assert items.tolist() == want[0]
        assert totals.tolist() == want[1]  # exactly: the same sums in the same order
        assert anchor_of.tolist() == want[2]
        checked += 1
        cut += n == 3
    assert checked >= 20 and cut >= 3


@pytest.mark.parametrize("seed", range(4))
def test_pruned_top_is_the_exact_top_k(seed: int) -> None:
    rng = np.random.default_rng(seed)
    items = rng.standard_normal((3000, 8)).astype(np.float32) * rng.exponential(
        1.0, (3000, 1)
    ).astype(np.float32)
    items[5] *= 20 / np.linalg.norm(items[5])  # the largest norm by far: at the top for many u
    items[100:110] = items[5]  # equal rows: equal scores, ties go to the lower row
    norms = np.linalg.norm(items, axis=1)
    order = np.argsort(-norms, kind="stable")
    by_norm, sorted_norms = np.ascontiguousarray(items[order]), norms[order]
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    ties = 0
    for _ in range(40):
        u = rng.standard_normal(8).astype(np.float32)
        k = int(rng.integers(1, 40))
        excluded = rng.choice(3000, int(rng.integers(0, 30)), replace=False)
        excl_rows = np.sort(rank[excluded])
        step = int(rng.choice([1, 50, 5000]))
        got_items, got_scores, needed = kernels.pruned_top(
            by_norm, sorted_norms, order, u, k, excl_rows, step
        )
        scores = by_norm @ u
        # BLAS sums a chunk's dot products in an order of its own (AVX-512 kernels differ
        # from AVX2's), so a score may differ from the whole product's in its last bits
        unorm = float(np.linalg.norm(u))
        tol = 1e-5 * unorm * sorted_norms
        ok = np.ones(3000, bool)
        ok[excl_rows] = False
        rows = np.flatnonzero(ok)
        best = rows[np.argsort(-scores[rows], kind="stable")[:k]]
        got_rows = rank[got_items]
        assert len(got_rows) == k and not np.isin(got_rows, excl_rows).any()
        assert (np.abs(got_scores - scores[got_rows]) <= tol[got_rows]).all()
        assert (np.diff(got_scores) <= 0).all()  # best first
        # equal scores keep the lower row first
        same = got_scores[1:] == got_scores[:-1]
        assert (got_rows[1:][same] > got_rows[:-1][same]).all()
        ties += int(same.any())
        # the exact top k up to rounding: no row left out beats a kept one by more than it
        slack = 2 * float(tol.max())
        assert got_scores[-1] >= scores[best[-1]] - slack
        left = np.setdiff1d(rows, got_rows)
        assert left.size == 0 or scores[left].max() <= got_scores[-1] + slack
        kth = float(got_scores[-1])
        assert needed == int(np.sum(sorted_norms >= np.float32(kth / unorm)))
    assert ties >= 3  # equal scores inside the top k: their order is checked
