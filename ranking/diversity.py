"""Diversity: no more than ``max_per_window`` items of one group in any ``window`` in a row.

A greedy re-order: at each position take the best remaining item whose group has fewer than
``max_per_window`` items among the previous ``window - 1`` positions. When every remaining item
would break the limit, the list ends there unless ``relax`` is set, in which case the best
remaining item is taken anyway (a short feed is better than an empty one). Order among allowed
items never changes, so the result stays as relevant as the limit allows.
"""

from __future__ import annotations

import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable

from ranking.types import ScoredItem


def diversify(
    items: list[ScoredItem],
    group: Callable[[str], str | None],
    *,
    max_per_window: int,
    window: int,
    relax: bool = True,
    limit: int | None = None,
) -> list[ScoredItem]:
    """Re-order ``items`` (best first) to respect the window limit. Items whose group is None
    are never limited. ``limit``: stop after that many items (the head is all a caller shows)."""
    order = diversity_order(
        [it.item_id for it in items], group,
        max_per_window=max_per_window, window=window, relax=relax, limit=limit,
    )
    return [items[i] for i in order]


def diversity_order(
    ids: Iterable[str],
    group: Callable[[str], str | None],
    *,
    max_per_window: int,
    window: int,
    relax: bool = True,
    limit: int | None = None,
) -> list[int]:
    """:func:`diversify` on ids: the positions of ``ids`` in their diversified order.

    ``ids`` is read only as far as the picks need (and ``group`` asked only for those): a
    generator that filters a long candidate list costs what the first ``limit`` picks use."""
    return diversity_positions(
        map(group, ids), max_per_window=max_per_window, window=window, relax=relax, limit=limit
    )


def diversity_positions(
    groups: Iterable[str | None],
    *,
    max_per_window: int,
    window: int,
    relax: bool = True,
    limit: int | None = None,
) -> list[int]:
    """:func:`diversity_order` given each item's group: the positions in diversified order,
    reading ``groups`` only as far as the picks need.

    Items held back wait in one queue per group, so each pick looks at the few groups that
    wait (the earliest waiting item of a group that fits now is that group's first) instead
    of every waiting item."""
    it = iter(groups)
    want = sys.maxsize if limit is None else limit
    if max_per_window <= 0 or window <= 1 or max_per_window >= window:
        return [pos for pos, _ in zip(range(want), it, strict=False)]
    held: dict[str, deque[int]] = {}  # read, not placed yet, by group (None always fits)
    read = 0
    recent: deque[str | None] = deque(maxlen=window - 1)
    full = window - 1
    counts: dict[str | None, int] = {}
    count = counts.get
    out: list[int] = []
    while len(out) < want:
        pos = -1
        g: str | None = None
        for hg, queue in held.items():  # the best item held back that fits now
            if (pos < 0 or queue[0] < pos) and count(hg, 0) < max_per_window:
                pos, g = queue[0], hg
        if pos < 0:  # read on: the next item that fits is placed, the others held back
            for g in it:
                p, read = read, read + 1
                if g is None or count(g, 0) < max_per_window:
                    pos = p
                    break
                held.setdefault(g, deque()).append(p)
            else:
                if not held or not relax:
                    break
                g = min(held, key=lambda k: held[k][0])  # the best held back, limit or not
                pos = held[g][0]
        if g in held and held[g][0] == pos:  # placed from the held-back queue: take it off
            queue = held[g]
            queue.popleft()
            if not queue:
                del held[g]
        if len(recent) == full:
            counts[recent[0]] -= 1
        recent.append(g)
        counts[g] = count(g, 0) + 1
        out.append(pos)
    return out


def max_in_any_window(groups: list[str | None], window: int) -> int:
    """The largest count of one (non-None) group in any `window` consecutive positions."""
    best = 0
    for start in range(max(1, len(groups) - window + 1)):
        c = Counter(g for g in groups[start : start + window] if g is not None)
        if c:
            best = max(best, max(c.values()))
    return best
