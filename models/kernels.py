"""Compiled (numba) kernels of the two hot loops of a recommendation request.

Each is one call where numpy would take a few dozen calls on arrays of a few hundred to a few
thousand values, and numpy's per-call cost, not the arithmetic, would be the time
(docs/decisions.md, "Compiled kernels for the hot loops").

* :func:`history_top` — the ``history`` source on the rows of a sparse item-item matrix.
* :func:`pruned_top` — the exact top ``k`` of ``item_factors @ user`` with items sorted by
  decreasing norm, stopping once the bound ``|u|·|i|`` of the rest cannot beat the k-th best.

numba compiles a kernel at its first call for each kind of arrays and caches the machine code
on disk (``__pycache__`` next to this file, else numba's user cache). The indexes of
:mod:`models.fast` make that first call with their own arrays when a model is loaded, so a
worker pays it at start-up (a fraction of a second from the cache; ~20 s to compile on a
machine that has never run them), not in a request. Importing this module imports numba:
import it where a model is loaded, not at the top of a module that every command imports.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _member(sorted_ids: np.ndarray, x: np.int64) -> bool:  # pragma: no cover - compiled
    lo, hi = 0, sorted_ids.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_ids[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo < sorted_ids.size and sorted_ids[lo] == x


@njit(cache=True)
def _stable_order(keys: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Positions of ``keys`` in ascending order, equal keys in input order (merge sort)."""
    n = keys.size
    order = np.arange(n)
    tmp = np.empty(n, np.int64)
    width = 1
    while width < n:
        lo = 0
        while lo < n - width:
            mid, hi = lo + width, min(lo + 2 * width, n)
            i, j, t = lo, mid, lo
            while i < mid and j < hi:
                if keys[order[j]] < keys[order[i]]:
                    tmp[t] = order[j]
                    j += 1
                else:
                    tmp[t] = order[i]
                    i += 1
                t += 1
            while i < mid:
                tmp[t] = order[i]
                i += 1
                t += 1
            while j < hi:
                tmp[t] = order[j]
                j += 1
                t += 1
            order[lo:hi] = tmp[lo:hi]
            lo += 2 * width
        width *= 2
    return order


@njit(cache=True)
def history_top(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    anchors: np.ndarray,
    exclude: np.ndarray,
    seen: np.ndarray,
    n: int,
    decay: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:  # pragma: no cover - compiled
    """The ``history`` source: each anchor (most recent first; the k-th weighted
    ``decay ** k``) gives its top ``n`` neighbours with a positive score, other than itself and
    the ``exclude`` items, scores divided by its best one's; neighbours already ``seen`` are
    then dropped. An item's score is the sum of its contributions (largest first, then most
    recent); its anchor the one that gave most. Returns the top ``n`` items (ties: lower index
    first), their scores, their anchors' positions, and False when an anchor had no neighbour
    left (the caller then asks the next model). ``exclude`` and ``seen``: sorted indices."""
    cap = 0
    for k in range(anchors.size):
        cap += indptr[anchors[k] + 1] - indptr[anchors[k]]
    ids = np.empty(cap, np.int64)
    v = np.empty(cap, np.float64)
    ks = np.empty(cap, np.int64)
    m = 0
    for k in range(anchors.size):
        a = anchors[k]
        start = m
        for j in range(indptr[a], indptr[a + 1]):
            i = np.int64(indices[j])
            s = np.float64(data[j])
            if i == a or not s > 0 or _member(exclude, i):
                continue
            ids[m] = i
            v[m] = s
            m += 1
        if m == start:
            return ids[:0], v[:0], ks[:0], False
        if m - start > n:  # its top n, ties in stored order
            order = _stable_order(-v[start:m])[:n]
            top_i = ids[start:m][order]
            top_v = v[start:m][order]
            ids[start:start + n] = top_i
            v[start:start + n] = top_v
            m = start + n
        best = v[start]
        for j in range(start + 1, m):
            best = max(best, v[j])
        w = decay**k / best
        kept = start
        for j in range(start, m):
            if _member(seen, ids[j]):
                continue
            ids[kept] = ids[j]
            v[kept] = v[j] * w
            ks[kept] = k
            kept += 1
        m = kept
    if m == 0:
        return ids[:0], v[:0], ks[:0], True
    by_item = _stable_order(ids[:m].astype(np.float64))
    items = np.empty(m, np.int64)
    totals = np.empty(m, np.float64)
    anchor_of = np.empty(m, np.int64)
    gv = np.empty(anchors.size, np.float64)
    gk = np.empty(anchors.size, np.int64)
    u = 0
    p = 0
    while p < m:
        q = p
        item = ids[by_item[p]]
        while q < m and ids[by_item[q]] == item:
            x, y = v[by_item[q]], ks[by_item[q]]
            r = q - p  # insertion by (largest contribution, then most recent)
            while r > 0 and (gv[r - 1] < x or (gv[r - 1] == x and gk[r - 1] > y)):
                gv[r], gk[r] = gv[r - 1], gk[r - 1]
                r -= 1
            gv[r], gk[r] = x, y
            q += 1
        rest = 0.0  # numpy's add.reduceat order: first + (sum of the rest)
        for t in range(1, q - p):
            rest += gv[t]
        items[u] = item
        totals[u] = gv[0] + rest if q - p > 1 else gv[0]
        anchor_of[u] = gk[0]
        u += 1
        p = q
    top = _stable_order(-totals[:u])[:n]
    return items[top], totals[top], anchor_of[top], True


@njit(cache=True)
def pruned_top(
    by_norm: np.ndarray,
    norms: np.ndarray,
    order: np.ndarray,
    u: np.ndarray,
    k: int,
    exclude: np.ndarray,
    step: int,
) -> tuple[np.ndarray, np.ndarray, int]:  # pragma: no cover - compiled
    """The top ``k`` of ``by_norm @ u``, best first (ties: lower row first), as item indices
    (``order[row]``) and scores. Rows are sorted by decreasing ``norms``; ``exclude`` holds
    sorted row positions to leave out.

    Scores ``step`` rows, then half as many (at least 1,024) at a time, until the k-th best
    beats ``|u|·norms[next row]``. Also returns how many rows the exact answer needed (the
    rows whose bound is above the k-th best), or -1 when fewer than ``k`` rows were left."""
    total = by_norm.shape[0]
    top_s = np.empty(k, np.float32)
    top_i = np.empty(k, np.int64)
    have = 0
    unorm = np.float64(np.sqrt(np.dot(u, u)))
    start = 0
    while start < total:
        stop = min(total, start + step)
        s = np.dot(by_norm[start:stop], u)
        for r in range(stop - start):
            x = s[r]
            if have == k and not x > top_s[k - 1]:
                continue
            pos = np.int64(start + r)
            if exclude.size and _member(exclude, pos):
                continue
            j = have if have < k else k - 1
            while j > 0 and top_s[j - 1] < x:
                top_s[j], top_i[j] = top_s[j - 1], top_i[j - 1]
                j -= 1
            top_s[j], top_i[j] = x, pos
            if have < k:
                have += 1
        start = stop
        if (
            have == k
            and start < total
            and np.float64(top_s[k - 1]) >= unorm * np.float64(norms[start])
        ):
            break
        step = max(step // 2, 1024)
    needed = -1
    if have == k and unorm > 0:
        # rows whose bound |u|·norm is above the k-th best (norms descending; float32 compare
        # of the bound, as numpy's searchsorted of -bound in the negated norms does)
        bound = np.float32(np.float64(top_s[k - 1]) / unorm)
        lo, hi = 0, total
        while lo < hi:
            mid = (lo + hi) >> 1
            if -norms[mid] <= -bound:
                lo = mid + 1
            else:
                hi = mid
        needed = lo
    items = np.empty(have, np.int64)
    for j in range(have):
        items[j] = order[top_i[j]]
    return items, top_s[:have].copy(), needed
