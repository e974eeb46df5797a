"""The blend stage: several sources' candidate lists → one order, each item with every reason.

Every source's list is turned into rank scores ``weight · exp(-rank / BLEND_TAU)`` (robust to
the different score scales of models) and summed per item; the order is by total, then id.
Items are built lazily (:meth:`Blended.item`): later stages look at a few of many candidates.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass
from itertools import compress, islice, repeat

import numpy as np

from data.served_log import BreakdownColumns
from ranking import candidates as C
from ranking.types import LazyItems, Reason, ScoredItem

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
        """The item with every reason; its breakdown is computed when first read (a feed
        keeps 200 items and reads the breakdowns of the few it logs or shows in debug)."""
        return ScoredItem(iid, self.score[iid], self.reasons(iid), BlendBreakdown(self, iid))

    def reasons(self, iid: str) -> tuple[Reason, ...]:
        """Every source's reasons for the item, in the order of the sources."""
        reasons: tuple[Reason, ...] = ()
        lists = self.lists
        for source, ranks in self.ranks.items():
            got = ranks.get(iid)
            if got is None:
                continue
            cands = lists[source][0]
            if isinstance(cands, C.CandList):
                rs = cands.reasons
                if isinstance(rs, Reason):  # one reason for the whole list
                    reasons += (rs,) * (len(got) if isinstance(got, list) else 1)
                else:
                    for r in got if isinstance(got, list) else (got,):
                        reasons += (rs[r],)
            else:
                for r in got if isinstance(got, list) else (got,):
                    reasons += cands[r].reasons
        return reasons

    def breakdown(self, iid: str) -> dict[str, float]:
        """The item's score components: each source's score and its blend share."""
        bd: dict[str, float] = {}
        for source, ranks in self.ranks.items():
            got = ranks.get(iid)
            if got is None:
                continue
            cands, w = self.lists[source]
            for r in got if isinstance(got, list) else (got,):
                if isinstance(cands, C.CandList):
                    bd[cands.name] = cands.scores[r]
                else:
                    bd.update(cands[r].breakdown)
                bd[f"blend:{source}"] = w * (
                    _DECAY[r] if r < len(_DECAY) else math.exp(-r / BLEND_TAU)
                )
        return bd


class BlendBreakdown(Mapping[str, float]):
    """:meth:`Blended.breakdown` of one item, computed on first read and kept."""

    __slots__ = ("_blended", "_iid", "_bd")

    def __init__(self, blended: Blended, iid: str) -> None:
        self._blended, self._iid = blended, iid
        self._bd: dict[str, float] | None = None

    def _get(self) -> dict[str, float]:
        bd = self._bd
        if bd is None:
            bd = self._bd = self._blended.breakdown(self._iid)
        return bd

    def __getitem__(self, k: str) -> float:
        return self._get()[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __contains__(self, k: object) -> bool:
        return k in self._get()

    def keys(self) -> KeysView[str]:
        return self._get().keys()

    def values(self) -> ValuesView[float]:
        return self._get().values()

    def items(self) -> ItemsView[str, float]:
        return self._get().items()

    def get(self, k: str, default: float | None = None) -> float | None:  # type: ignore[override]
        return self._get().get(k, default)

    def __eq__(self, other: object) -> bool:
        return self._get() == (dict(other) if isinstance(other, Mapping) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._get())


class BlendedItems(LazyItems):
    """Items of a blend in their final order, each built when first read.

    The feed keeps 200 items so that later pages continue page 1, shows 10 of them and logs
    50: building all 200 cost more than ranking them. ``extra`` reasons are added to every
    item (the experiment's). The feed page store reads :meth:`scores` and
    :meth:`reason_sets`, the served log :meth:`breakdowns`, without building items."""

    __slots__ = ("blended", "ids", "extra")

    def __init__(self, blended: Blended, ids: list[str], extra: tuple[Reason, ...] = ()) -> None:
        super().__init__(len(ids))
        self.blended, self.ids, self.extra = blended, ids, extra

    def _make(self, p: int) -> ScoredItem:
        b, iid = self.blended, self.ids[p]
        return ScoredItem(iid, b.score[iid], b.reasons(iid) + self.extra, BlendBreakdown(b, iid))

    def breakdowns(self, n: int) -> list[tuple[str, Mapping[str, float]]]:
        """The first ``n`` items' ids and breakdowns, without building the items."""
        b = self.blended
        return [(iid, b.breakdown(iid)) for iid in self.ids[:n]]

    def breakdown_columns(self, n: int) -> BreakdownColumns | None:
        """:meth:`breakdowns` as columns, one pair per source (its score, its blend share),
        read with ``map`` at C speed; None when a list is not packed or repeats an item, two
        lists share a name, or a score is NaN (it would read as no entry)."""
        b, ids = self.blended, self.ids[:n]
        keys: list[str] = []
        rows: list[list[float]] = []
        absent = 0
        for source, ranks in b.ranks.items():
            cands, w = b.lists[source]
            if not isinstance(cands, C.CandList) or (
                ranks and isinstance(next(iter(ranks.values())), list)
            ):
                return None
            m = len(cands)
            got = list(map(ranks.get, ids, repeat(m)))  # m: not in this list
            absent += got.count(m)
            shares = _shares(w)[:m] + [w * math.exp(-r / BLEND_TAU) for r in range(1024, m)]
            rows.append(list(map([*cands.scores, math.nan].__getitem__, got)))
            rows.append(list(map([*shares, math.nan].__getitem__, got)))
            keys += (cands.name, f"blend:{source}")
        values = np.array(rows, dtype=np.float64).reshape(len(rows), len(ids))
        if len(set(keys)) != len(keys) or int(np.isnan(values).sum()) != 2 * absent:
            return None
        return BreakdownColumns(ids, keys, values)

    def scores(self) -> list[float]:
        score = self.blended.score
        return [score[i] for i in self.ids]

    def reason_sets(self) -> tuple[list[int], list[tuple[Reason, ...]]]:
        """Each item's reasons as an index into the list's distinct reason tuples, and those
        tuples: what ``[it.reasons for it in self]`` holds, without building the items.

        Items get one key per source (whether the source has it, when the source gives one
        reason for its whole list; else which reason object it gives it), computed by
        ``map`` chains at C speed; the reasons are built once per distinct key (a feed of
        200 has about 20), from its first item."""
        b, ids = self.blended, self.ids
        n = len(ids)
        cols: list[list[object]] = []
        for source, ranks in b.ranks.items():
            col = _reason_keys(b.lists[source][0], ranks, ids)
            if col is None:  # an item twice in a list, or items with several reasons
                keys: list[tuple[object, ...]] = [tuple(map(id, b.reasons(i))) for i in ids]
                break
            cols.append(col)
        else:
            keys = list(zip(*cols, strict=True))
        index = dict.fromkeys(keys, 0)  # distinct keys in order of first appearance
        for k, key in enumerate(index):
            index[key] = k
        first = dict(zip(reversed(keys), range(n - 1, -1, -1), strict=True))  # key → 1st row
        sets = [b.reasons(ids[first[key]]) + self.extra for key in index]
        return list(map(index.__getitem__, keys)), sets


_NO_REASON = Reason(source="popular", detail="(no item)")
"""Stands for "not in this list" in :func:`_reason_keys`' look-ups."""


def _reason_keys(
    cands: Candidates, ranks: dict[str, int] | dict[str, list[int]], ids: list[str]
) -> list[object] | None:
    """Per id, what decides the source's reasons for it (None: cannot say at C speed)."""
    if ranks and isinstance(next(iter(ranks.values())), list):
        return None
    if isinstance(cands, C.CandList):
        rs = cands.reasons
        if isinstance(rs, Reason):
            return list(map(ranks.__contains__, ids))
        ext = [*rs, _NO_REASON]
        return list(map(id, map(ext.__getitem__, map(ranks.get, ids, repeat(len(rs))))))
    ext_items = [*cands, ScoredItem("", 0.0, (_NO_REASON,))]
    got = list(map(_REASONS, map(ext_items.__getitem__, map(ranks.get, ids, repeat(len(cands))))))
    if set(map(len, got)) != {1}:  # not one reason per item
        return None
    return list(map(id, map(_FIRST, got)))


_REASONS = operator.attrgetter("reasons")
_FIRST = operator.itemgetter(0)


@functools.lru_cache(maxsize=64)
def _shares(w: float) -> list[float]:
    """``w · exp(-rank / BLEND_TAU)`` for the first ranks (weights are a few configured
    values)."""
    return [w * d for d in _DECAY]


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
            if not score:  # the first list: written at C speed
                shares = _shares(w) if decay is _DECAY else [w * d for d in decay]
                score.update(zip(ids, shares, strict=False))
                continue
            get = score.get
            for iid, d in zip(ids, decay, strict=False):
                score[iid] = get(iid, 0.0) + w * d
            continue
        repeated: dict[str, list[int]] = {}
        for r, (iid, d) in enumerate(zip(ids, decay, strict=False)):
            score[iid] = score.get(iid, 0.0) + w * d
            repeated.setdefault(iid, []).append(r)
        ranks[source] = repeated
    # by total, best first, then by id: one sort by total (stable), then the rare runs of
    # equal totals put in id order (sorting every id first cost as much as the blend)
    order = sorted(score, key=score.__getitem__, reverse=True)
    totals = list(map(score.__getitem__, order))
    # positions equal to the one before (most lists have a few: items at the same ranks of
    # lists of the same weight), found at C speed
    tied = list(compress(range(1, len(order)), map(operator.eq, totals, islice(totals, 1, None))))
    k = 0
    while k < len(tied):
        start = end = tied[k] - 1  # a run of equal totals: order[start : end + 1]
        while k < len(tied) and tied[k] == end + 1:
            end += 1
            k += 1
        order[start : end + 1] = sorted(order[start : end + 1])
    return Blended(order, score, ranks, used)
