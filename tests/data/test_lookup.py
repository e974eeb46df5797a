"""data.lookup.sorted_row: the row of every key, -1 for any other (longer ones included)."""

from __future__ import annotations

import random

import numpy as np

from data.lookup import sorted_row


def test_finds_every_key_and_no_other() -> None:
    rnd = random.Random(1)
    keys = sorted({f"u{rnd.randrange(10**6)}" for _ in range(500)})
    for ids in (np.array(keys, dtype=str), np.array(keys, dtype=object)):
        for row, key in enumerate(keys):
            assert sorted_row(ids, key) == row
        longest = max(len(k) for k in keys)
        absent = ["", "a", "u", "z", "u" + "9" * longest, "someone-new-" + "x" * 40,
                  *(k + "0" for k in keys[:50]), *(k[:-1] for k in keys[:50])]
        for key in absent:
            assert sorted_row(ids, key) == (keys.index(key) if key in keys else -1)


def test_an_empty_array_has_no_rows() -> None:
    assert sorted_row(np.array([], dtype="U1"), "u1") == -1
    assert sorted_row(np.array([], dtype="U1"), "") == -1
