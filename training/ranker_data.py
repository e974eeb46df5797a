"""The learned ranker's training lists, its training job and its offline evaluation.

A training list is one served list of the served log (``data.served_log``) joined with what
followed: per shown item the best of impression 0, click 1, add to cart 2, purchase 3 among
the events that echo the list's ``request_id`` (or, for carts and purchases sent without it,
the same shopper's events on the item within ``window`` after the list was served). Items of
a list count as shown when an event echoes the request for them; lists without any are left
out (nothing says what the shopper saw).

Features come from ``models.ranker_features.features`` — the function serving calls —
on the logged breakdowns, the shopper's profile at the moment of the request (the events
before it replayed through the store serving uses, ``ranking.profile.ProfileStore``, which the
caller passes in: training does not import online ranking) and the
catalog; item statistics are computed from the events before the lists being learned from.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data.catalog import Catalog
from data.models import CATEGORY_SEPARATOR
from data.served_log import ServedList
from models.lambdarank import LambdaRanker, RankerParams
from models.ranker_features import (
    FEATURES,
    Candidate,
    ItemStats,
    ItemTable,
    ShopperStore,
    features,
)

log = logging.getLogger(__name__)

GRADES = {"impression": 0, "click": 1, "add_to_cart": 2, "purchase": 3}
STAT_WEIGHTS = {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}
TREND_DAYS = 3
BLEND_COL = FEATURES.index("blend_score")
EXPLORED = "explore"
"""The served log's ranker version of lists shown in a random order (``ranking.learned``)."""


class _Ev(NamedTuple):
    """An event as ``ProfileStore.record`` reads it."""

    user_id: str
    item_id: str | None
    type: str
    value: float | None


@dataclass(frozen=True)
class RankerData:
    x: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    positions: np.ndarray
    at: list[datetime]
    """When each list was served (one per group)."""
    explored: np.ndarray
    """Per list: shown in a random order (the ``explore`` variant, ``ranking.learned``)."""

    @property
    def n_lists(self) -> int:
        return len(self.groups)

    def take(self, lists: np.ndarray) -> RankerData:
        """The given lists (indices into the groups), in that order."""
        starts = np.concatenate(([0], np.cumsum(self.groups)[:-1]))
        rows = np.concatenate([np.arange(starts[g], starts[g] + self.groups[g]) for g in lists]) \
            if len(lists) else np.zeros(0, np.int64)
        return RankerData(self.x[rows], self.labels[rows], self.groups[lists],
                          self.positions[rows], [self.at[g] for g in lists], self.explored[lists])


def item_stats(events: pa.Table, catalog: Catalog, until: datetime | None = None) -> ItemStats:
    """Popularity, 3-day trend and the usual price per leaf, from events before ``until``."""
    t = events.select(["item_id", "type", "timestamp"])
    if until is not None:
        ts_type = t.schema.field("timestamp").type
        t = t.filter(pc.less(t.column("timestamp"), pa.scalar(until, ts_type)))
    t = t.filter(pc.is_in(t.column("type"), pa.array(list(STAT_WEIGHTS))))
    items = t.column("item_id").to_pylist()
    types = t.column("type").to_pylist()
    ts = t.column("timestamp").to_pylist()
    pop: dict[str, float] = defaultdict(float)
    recent: dict[str, float] = defaultdict(float)
    if ts:
        end = max(ts)
        start = min(ts)
        days = max((end - start).total_seconds() / 86400, TREND_DAYS)
        cut = end - timedelta(days=TREND_DAYS)
        for i, ty, when in zip(items, types, ts, strict=True):
            if i is None:
                continue
            w = STAT_WEIGHTS[ty]
            pop[i] += w
            if when >= cut:
                recent[i] += w
        trend = {i: math.log((recent.get(i, 0.0) + 1) / (v * TREND_DAYS / days + 1))
                 for i, v in pop.items()}
    else:
        trend = {}
    prices: dict[str, list[float]] = defaultdict(list)
    for iid in catalog.ids():
        f = catalog.facts(iid)
        if f is not None:
            prices[CATEGORY_SEPARATOR.join(f.category)].append(f.price)
    return ItemStats({i: math.log1p(v) for i, v in pop.items()}, trend,
                     {k: float(median(v)) for k, v in prices.items()})


def _labels(events: pa.Table, window: timedelta) -> tuple[
    dict[tuple[str, str], int], dict[tuple[str, str], list[tuple[datetime, int]]]
]:
    """(request id, item) → best grade; (user, item) → [(time, grade)] of carts and purchases
    sent without a request id."""
    t = events.filter(pc.is_in(events.column("type"), pa.array(list(GRADES))))
    by_req: dict[tuple[str, str], int] = {}
    loose: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
    for rid, user, item, ty, when in zip(
        t.column("request_id").to_pylist(), t.column("user_id").to_pylist(),
        t.column("item_id").to_pylist(), t.column("type").to_pylist(),
        t.column("timestamp").to_pylist(), strict=True,
    ):
        if item is None:
            continue
        g = GRADES[ty]
        if rid:
            key = (rid, item)
            if by_req.get(key, -1) < g:
                by_req[key] = g
        elif g >= 2 and user:
            loose[(user, item)].append((when, g))
    return by_req, loose


def build_dataset(
    served: Sequence[ServedList],
    events: pa.Table,
    catalog: Catalog,
    stats: ItemStats,
    *,
    profiles: Callable[[Catalog], ShopperStore],
    window: timedelta = timedelta(hours=1),
    progress: Callable[[str], None] | None = None,
) -> RankerData:
    """Training lists from served lists + events (see the module docstring). ``profiles``:
    a new, empty shopper store over the catalog (``ranking.profile.ProfileStore``)."""
    by_req, loose = _labels(events, window)
    ev = events.select(["user_id", "item_id", "type", "value", "timestamp"])
    ev = ev.take(pc.sort_indices(ev, [("timestamp", "ascending")]))
    users, items, types = (ev.column(c).to_pylist() for c in ("user_id", "item_id", "type"))
    values, times = ev.column("value").to_pylist(), ev.column("timestamp").to_pylist()
    store = profiles(catalog)
    table = ItemTable(catalog, stats)
    e = 0
    xs, labels, groups, positions, ats, explored = [], [], [], [], [], []
    lists = sorted(served, key=lambda s: (s.at, s.request_id))
    for k, sl in enumerate(lists):
        if progress is not None and k % 5000 == 0:
            progress(f"ranker lists: {k:,}/{len(lists):,}")
        # the shopper as serving saw them: every event before the request
        batch = []
        while e < len(times) and times[e] < sl.at:
            batch.append(_Ev(users[e], items[e], types[e], values[e]))
            e += 1
        if batch:
            store.record(batch)
        shown = [(p, iid, bd) for p, (iid, bd) in enumerate(sl.items)
                 if (sl.request_id, iid) in by_req]
        if not shown:
            continue
        grades = []
        for _, iid, _ in shown:
            g = by_req[(sl.request_id, iid)]
            if g < 2 and sl.user_id:
                for when, lg in loose.get((sl.user_id, iid), ()):
                    if sl.at <= when <= sl.at + window:
                        g = max(g, lg)
            grades.append(g)
        profile = store.get(sl.user_id) if sl.user_id else store.get("")
        cands = [Candidate(iid, bd) for _, iid, bd in shown]
        xs.append(features(cands, profile, table, sl.at))
        labels.extend(grades)
        groups.append(len(shown))
        positions.extend(p for p, _, _ in shown)
        ats.append(sl.at)
        explored.append(sl.ranker_version == EXPLORED)
    if not groups:
        return RankerData(np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.int32),
                          np.zeros(0, np.int64), np.zeros(0, np.int32), [], np.zeros(0, bool))
    return RankerData(np.vstack(xs), np.asarray(labels, np.int32), np.asarray(groups, np.int64),
                      np.asarray(positions, np.int32), ats, np.asarray(explored, bool))


# ---------------------------------------------------------------------------- metrics
def _ndcg_recall(scores: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, float] | None:
    if labels.max() <= 0:
        return None
    order = np.lexsort((np.arange(len(scores)), -scores))
    gains = (2.0 ** labels - 1)
    disc = 1.0 / np.log2(np.arange(2, len(scores) + 2))
    dcg = float((gains[order][:k] * disc[:k]).sum())
    ideal = float((np.sort(gains)[::-1][:k] * disc[:k]).sum())
    pos = labels > 0
    return dcg / ideal, float(pos[order][:k].sum() / pos.sum())


def list_metrics(data: RankerData, scores: np.ndarray, k: int = 10) -> dict[str, float]:
    """Mean NDCG@k (gains 2^grade − 1) and Recall@k (grade ≥ 1) over lists with a positive."""
    nd, rc = [], []
    start = 0
    for g in data.groups:
        got = _ndcg_recall(scores[start:start + g], data.labels[start:start + g], k)
        start += g
        if got is not None:
            nd.append(got[0])
            rc.append(got[1])
    return {f"ndcg@{k}": float(np.mean(nd)) if nd else 0.0,
            f"recall@{k}": float(np.mean(rc)) if rc else 0.0, "lists": float(len(nd))}


def blend_scores(data: RankerData) -> np.ndarray:
    """The hand blend's scores of the rows (its order within each list), ties by position."""
    return np.nan_to_num(data.x[:, BLEND_COL].astype(np.float64)) - 1e-6 * data.positions


@dataclass(frozen=True)
class RankerReport:
    version: str | None
    n_lists: int
    n_rows: int
    heldout: dict[str, dict[str, float]]
    """"ranker" / "hand_blend" → metrics on the held-out later lists ({} when too few);
    "ranker (explored lists)" / "hand_blend (explored lists)" on those of them shown in a
    random order, when there are any."""
    n_train_lists: int


def train_ranker(
    served: Sequence[ServedList],
    events: pa.Table,
    catalog: Catalog,
    *,
    profiles: Callable[[Catalog], ShopperStore],
    params: RankerParams | None = None,
    holdout_fraction: float = 0.25,
    progress: Callable[[str], None] | None = None,
) -> tuple[LambdaRanker, RankerReport]:
    """Evaluate on the later ``holdout_fraction`` of the lists (a ranker trained on the
    earlier ones against the hand blend), then fit the ranker on every list."""
    say = progress or (lambda _m: None)
    lists = sorted(served, key=lambda s: (s.at, s.request_id))
    if not lists:
        raise ValueError("no served lists to learn from")
    heldout: dict[str, dict[str, float]] = {}
    n_train = 0
    cut_i = int(len(lists) * (1 - holdout_fraction))
    if 0 < cut_i < len(lists):
        cut = lists[cut_i].at
        say("ranker: offline evaluation on the later lists")
        early = item_stats(events, catalog, until=cut)
        d = build_dataset(lists, events, catalog, early, profiles=profiles, progress=say)
        is_train = np.array([a < cut for a in d.at])
        tr, te = d.take(np.flatnonzero(is_train)), d.take(np.flatnonzero(~is_train))
        if tr.n_lists and te.n_lists and tr.labels.max() > 0:
            m = LambdaRanker(params).fit(tr.x, tr.labels, tr.groups, tr.positions, stats=early)
            heldout = {"ranker": list_metrics(te, m.predict(te.x)),
                       "hand_blend": list_metrics(te, blend_scores(te))}
            ex = te.take(np.flatnonzero(te.explored))
            if ex.n_lists:
                heldout["ranker (explored lists)"] = list_metrics(ex, m.predict(ex.x))
                heldout["hand_blend (explored lists)"] = list_metrics(ex, blend_scores(ex))
            n_train = tr.n_lists
    say("ranker: fitting on every list")
    stats = item_stats(events, catalog)
    d = build_dataset(lists, events, catalog, stats, profiles=profiles, progress=say)
    if d.n_lists == 0 or d.labels.max() <= 0:
        raise ValueError("no served list has a click, cart or purchase yet")
    model = LambdaRanker(params).fit(d.x, d.labels, d.groups, d.positions, stats=stats)
    return model, RankerReport(None, d.n_lists, len(d.labels), heldout, n_train)
