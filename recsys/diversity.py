"""Diversity: no more than ``max_per_window`` items of one group in any ``window`` in a row.

A greedy re-order: at each position take the best remaining item whose group has fewer than
``max_per_window`` items among the previous ``window - 1`` positions. When every remaining item
would break the limit, the list ends there unless ``relax`` is set, in which case the best
remaining item is taken anyway (a short feed is better than an empty one). Order among allowed
items never changes, so the result stays as relevant as the limit allows.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

from recsys.types import ScoredItem


def diversify(
    items: list[ScoredItem],
    group: Callable[[str], str | None],
    *,
    max_per_window: int,
    window: int,
    relax: bool = True,
) -> list[ScoredItem]:
    """Re-order ``items`` (best first) to respect the window limit. Items whose group is None
    are never limited."""
    if max_per_window <= 0 or window <= 1 or max_per_window >= window or len(items) <= 1:
        return list(items)
    remaining = list(items)
    groups = {it.item_id: group(it.item_id) for it in items}
    recent: deque[str | None] = deque(maxlen=window - 1)
    counts: Counter[str | None] = Counter()
    out: list[ScoredItem] = []
    while remaining:
        pick = None
        for idx, it in enumerate(remaining):
            g = groups[it.item_id]
            if g is None or counts[g] < max_per_window:
                pick = idx
                break
        if pick is None:
            if not relax:
                break
            pick = 0
        it = remaining.pop(pick)
        g = groups[it.item_id]
        if len(recent) == recent.maxlen:
            counts[recent[0]] -= 1
        recent.append(g)
        counts[g] += 1
        out.append(it)
    return out


def max_in_any_window(groups: list[str | None], window: int) -> int:
    """The largest count of one (non-None) group in any `window` consecutive positions."""
    best = 0
    for start in range(max(1, len(groups) - window + 1)):
        c = Counter(g for g in groups[start : start + window] if g is not None)
        if c:
            best = max(best, max(c.values()))
    return best
