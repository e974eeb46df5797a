"""Looking a string up in a sorted numpy string array (user ids of profiles and models)."""

from __future__ import annotations

import numpy as np


def sorted_row(ids: np.ndarray, key: str) -> int:
    """The row of ``key`` in ``ids`` (sorted ascending), or -1.

    A key longer than the array's strings cannot be in it, and numpy would first cast the
    whole array to the longer string type to search for it: 14 ms for a million user ids,
    paid on every request of a shopper whose id is longer than any known one."""
    n = len(ids)
    if not n or (ids.dtype.kind == "U" and len(key) > ids.dtype.itemsize // 4):
        return -1
    r = int(ids.searchsorted(key))
    return r if r < n and ids[r] == key else -1
