"""The blend stage: several sources' candidate lists → one order, each item with every reason.

Every source's list is turned into rank scores ``weight · exp(-rank / BLEND_TAU)`` (robust to
the different score scales of models) and summed per item; the order is by total, then id.
Items are built lazily (:meth:`Blended.item`): later stages look at a few of many candidates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ranking import candidates as C
from ranking.types import Reason, ScoredItem

BLEND_TAU = 25.0
"""Rank decay of blending: the item at rank 25 of a source counts 1/e of its first item."""
_DECAY = [math.exp(-r / BLEND_TAU) for r in range(1024)]

Candidates = C.CandList | list[ScoredItem]
"""A source's list: packed (:class:`ranking.candidates.CandList`) or already built items."""


@dataclass(frozen=True, slots=True)
class Blended:
    """Blended candidates, not yet built: the order, each item's total and, per list, where
    it ranks each item. :meth:`item` builds one item with every reason and component."""

    order: list[str]
    score: dict[str, float]
    ranks: dict[str, dict[str, list[int]] | dict[str, int]]
    """Source → item → its rank in that list (the ranks, for a list that repeats an item)."""
    lists: dict[str, tuple[Candidates, float]]

    def item(self, iid: str) -> ScoredItem:
        reasons: tuple[Reason, ...] = ()
        bd: dict[str, float] = {}
        for source, ranks in self.ranks.items():
            got = ranks.get(iid)
            if got is None:
                continue
            cands, w = self.lists[source]
            for r in got if isinstance(got, list) else (got,):
                if isinstance(cands, C.CandList):
                    reasons += cands.reasons_at(r)
                    bd[cands.name] = cands.scores[r]
                else:
                    it = cands[r]
                    reasons += it.reasons
                    bd.update(it.breakdown)
                bd[f"blend:{source}"] = w * (
                    _DECAY[r] if r < len(_DECAY) else math.exp(-r / BLEND_TAU)
                )
        return ScoredItem(iid, self.score[iid], reasons, bd)


def blend(lists: Mapping[str, Candidates], weights: Mapping[str, float]) -> Blended:
    """Sum the rank scores of every list per item; the order is by total, then id."""
    score: dict[str, float] = {}
    ranks: dict[str, dict[str, list[int]] | dict[str, int]] = {}
    used: dict[str, tuple[Candidates, float]] = {}
    for source, cands in lists.items():
        w = weights.get(source, 0.0)
        if w <= 0 or not cands:
            continue
        used[source] = (cands, w)
        ids = cands.ids if isinstance(cands, C.CandList) else [it.item_id for it in cands]
        decay = (
            _DECAY
            if len(ids) <= len(_DECAY)
            else [math.exp(-r / BLEND_TAU) for r in range(len(ids))]
        )
        rank_of = dict(zip(ids, range(len(ids)), strict=False))
        if len(rank_of) == len(ids):  # no item twice in the list (sources give each once)
            ranks[source] = rank_of
            get = score.get
            for iid, d in zip(ids, decay, strict=False):
                score[iid] = get(iid, 0.0) + w * d
            continue
        repeated: dict[str, list[int]] = {}
        for r, (iid, d) in enumerate(zip(ids, decay, strict=False)):
            score[iid] = score.get(iid, 0.0) + w * d
            repeated.setdefault(iid, []).append(r)
        ranks[source] = repeated
    order = sorted(score)  # by id, then (stable) by total, best first
    order.sort(key=score.__getitem__, reverse=True)
    return Blended(order, score, ranks, used)
