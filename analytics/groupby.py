"""Columnar group-bys over integer codes: what the KPI report and its attribution count with.

Events become integer codes (dictionary codes of string columns); a slice is then a numpy
group-by over them, with no Python work per event. Distinct rows are found by packing the
columns into one int64 key and sorting (much faster than ``np.unique``'s hash path on millions
of mostly distinct keys), falling back to ``np.unique(axis=0)`` when the ranges do not fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def sorted_unique(key: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + neighbour compare: much faster than ``np.unique``'s
    hash path on millions of mostly distinct int64 keys)."""
    s = np.sort(key)
    if len(s) == 0:
        return s
    first = np.empty(len(s), bool)
    first[0] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    return s[first]


def unique_inverse(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and each input's index into them."""
    order = np.argsort(key)
    s = key[order]
    first = np.empty(len(s), bool)
    if len(s):
        first[0] = True
        np.not_equal(s[1:], s[:-1], out=first[1:])
    inv = np.empty(len(s), np.int64)
    inv[order] = np.cumsum(first) - 1
    return s[first], inv


def _pack(cols: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]] | None:
    """The columns packed into one int64 key (None when their ranges do not fit)."""
    sizes = [int(c.max()) + 1 for c in cols]
    if math.prod(sizes) >= 2**62:
        return None
    key = np.zeros(len(cols[0]), np.int64)
    for c, size in zip(cols, sizes, strict=True):
        key = key * size + c
    return key, sizes


def _unpack(key: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, ...]:
    out = []
    for size in reversed(sizes):
        out.append(key % size)
        key = key // size
    return tuple(reversed(out))


def group_rows(*cols: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Distinct rows of non-negative integer columns (sorted) and each input row's index
    into them — a columnar group-by."""
    if len(cols[0]) == 0:
        return tuple(np.zeros(0, np.int64) for _ in cols), np.zeros(0, np.int64)
    packed = _pack(cols)
    if packed is None:
        rows, inv = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
        return tuple(rows[:, j] for j in range(len(cols))), inv.reshape(-1)
    uniq, inv = unique_inverse(packed[0])
    return _unpack(uniq, packed[1]), inv


def distinct_rows(*cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct rows of non-negative integer columns (a sort, not an argsort)."""
    if len(cols[0]) == 0:
        return tuple(np.zeros(0, np.int64) for _ in cols)
    packed = _pack(cols)
    if packed is None:
        return group_rows(*cols)[0]
    return _unpack(sorted_unique(packed[0]), packed[1])


def mean_by(
    g: np.ndarray, values: np.ndarray, n: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-group mean and sample variance of ``values`` (group ``g``) over ``n`` units per
    group, the units without a value counting as zeros (two passes, like
    ``analytics.statistics.mean_ci``)."""
    total = np.bincount(g, weights=values, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    dev = values - mean[g]
    present = np.bincount(g, minlength=k)
    ss = np.bincount(g, weights=dev * dev, minlength=k) + (n - present) * mean * mean
    var = np.where(n > 1, ss / np.maximum(n - 1, 1), 0.0)
    return mean, var


def string_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dictionary codes of a string column (-1 for null) and the dictionary."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    enc = pc.dictionary_encode(arr)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, enc.dictionary


def filled(col: pa.ChunkedArray | pa.Array, fill: object) -> np.ndarray:
    """The column as numpy with nulls replaced by ``fill``."""
    return pc.fill_null(col, fill).to_numpy(zero_copy_only=False)
