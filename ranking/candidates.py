"""Named candidate sources: each turns a request into a short list of scored, explained items.

================  ==========================================================================
source            what it returns
================  ==========================================================================
``cf``            the collaborative model's picks for a known, consenting user
``history``       neighbours of the user's recent items (real-time: a view made a second ago
                  counts), via the item-kNN model, else any model's ``similar``, else content
``trending``      the trending model, else live event counts, else popularity
``new_arrivals``  the new-arrivals model, else the catalog's newest items
``promoted``      items tagged ``promoted`` (or ``attributes.promoted = true``)
``popular``       the popularity model, else live counts, else best-rated items (last resort)
================  ==========================================================================

Every source returns at most ``n`` items, best first, with a :class:`Reason` naming itself and
the model version. Sources never filter for stock or activity: the pipeline does that once.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from data.catalog import Catalog
from models import ModelHandle
from models.fast import NO_INDICES, NeighbourIndex
from ranking.catalog_index import CatalogIndex
from ranking.catalog_views import CatalogViews
from ranking.live import LiveCounts
from ranking.modelset import USER_SIDE_MODELS, ModelSet
from ranking.profile import UserProfile
from ranking.types import Reason, ScoredItem

log = logging.getLogger(__name__)

CF_MODELS: tuple[str, ...] = USER_SIDE_MODELS
"""Preference order for the ``cf`` source (first one present in the registry wins): the models
serving loads with their user side."""
SIMILAR_MODELS: tuple[str, ...] = ("item_knn", "ease", "als", "bpr", "content")
"""Preference order for item-to-item similarity."""
HISTORY_ITEMS = 5
"""How many of the most recent items feed the ``history`` source."""
HISTORY_DECAY = 0.75
"""Weight of the k-th most recent item: HISTORY_DECAY ** k."""
GLOBAL_LISTS = 64
"""How many explained lists of non-personal models :class:`GlobalSources` keeps (one per
source, model version, category and depth; least recently used dropped first)."""
GLOBAL_MIN_DEPTH = 256
"""Smallest depth a non-personal model's list is asked at (the model handle's own list cache
uses the same depths, :class:`models.fast.ListCache`)."""


def list_depth(want: int) -> int:
    """The depth a list of at least ``want`` items is fetched at: the next power of two, at
    least :data:`GLOBAL_MIN_DEPTH`, so that every ``n`` and exclusion size maps to a few
    lists."""
    return max(GLOBAL_MIN_DEPTH, 1 << (max(want, 1) - 1).bit_length())


@dataclass(frozen=True, slots=True)
class SourceRequest:
    profile: UserProfile
    n: int
    models: ModelSet
    history: tuple[str, ...] = ()
    """Recent items, most recent first (explicit for anonymous users, else the profile's)."""
    exclude: frozenset[str] = frozenset()
    category: tuple[str, ...] | None = None


Source = Callable[[SourceRequest], list[ScoredItem]]


def _safe(fn: Callable[[], list[tuple[str, float]]], what: str) -> list[tuple[str, float]]:
    try:
        return fn()
    except (KeyError, ValueError, IndexError) as exc:  # unknown id or empty model: no candidates
        log.debug("%s gave no candidates: %s", what, exc)
        return []


@dataclass(frozen=True, slots=True)
class CandList:
    """A source's list before it becomes :class:`ScoredItem` objects: ids best first, their
    scores, and one reason for all or one per item. Ranking builds objects only for the
    items that reach the answer (a few dozen of the hundreds of candidates)."""

    name: str
    """The score-breakdown key (``cf``, ``history``)."""
    ids: list[str]
    scores: list[float]
    reasons: Reason | list[Reason]

    def __len__(self) -> int:
        return len(self.ids)

    def reasons_at(self, r: int) -> tuple[Reason, ...]:
        rs = self.reasons
        return (rs,) if isinstance(rs, Reason) else (rs[r],)


def cf_list(req: SourceRequest) -> CandList | None:
    """The collaborative model's picks for a known, consenting user (None: no picks)."""
    model = req.models.first(CF_MODELS)
    p = req.profile
    # user_factors is False for an id erased over the API: the models learned it from what
    # was erased
    if (model is None or not p.personalizable or not p.user_factors
            or not model.knows_user(p.user_id)):
        return None
    pairs = _safe(
        lambda: model.recommend(
            user_id=p.user_id, n=req.n, exclude=req.exclude, category=req.category,
            filter_seen=False,
        ),
        "cf",
    )
    if not pairs:
        return None
    ids, scores = (list(col) for col in zip(*pairs, strict=True))
    if req.exclude and not req.exclude.isdisjoint(ids):  # the model let an excluded one by
        kept = [k for k, i in enumerate(ids) if i not in req.exclude]
        if not kept:
            return None
        ids, scores = [ids[k] for k in kept], [scores[k] for k in kept]
    reason = Reason(
        source="cf", detail=f"picked for you ({model.name})", model_version=model.version
    )
    return CandList("cf", ids, scores, reason)


def similar_model(models: ModelSet) -> ModelHandle | None:
    return models.first(SIMILAR_MODELS)


def _history_reason(used: ModelHandle, anchor: str) -> Reason:
    return Reason(
        source="history" if used.name != "content" else "content",
        detail="similar to an item you viewed",
        model_version=used.version,
        related_item_id=anchor,
    )


def history_list(req: SourceRequest) -> CandList | None:
    """Neighbours of the last few items, weighted by recency; explains the item they came from.

    Each of the last :data:`HISTORY_ITEMS` items (the k-th most recent weighted
    ``HISTORY_DECAY ** k``) contributes its top ``n`` neighbours, scores divided by its best
    neighbour's; an item's score is the sum, its reason the anchor that gave it most."""
    recent = req.history[:HISTORY_ITEMS]
    if not recent:
        return None
    chain = [
        m for m in (req.models.first(SIMILAR_MODELS), req.models.get("content")) if m is not None
    ]
    if not chain:
        return None
    index = chain[0].index
    if isinstance(index, NeighbourIndex):
        got = _history_fast(req, recent, chain[0], index)
        if got is not None:
            return got
    return _history_pairs(req, recent, chain)


def _history_fast(
    req: SourceRequest, recent: tuple[str, ...], used: ModelHandle, fast: NeighbourIndex
) -> CandList | None:
    """:func:`history_list` on the rows of a sparse item-item model, all anchors in one
    compiled call (:func:`models.kernels.history_top`; the same scores, ties by item index).
    None when an anchor is unknown to the model or has no neighbour left (the generic path
    then asks the next model)."""
    index = fast.item_index
    # recent is the head of the history (history_list): its indices are the history's first
    history = index.indices(req.history)
    anchors = history[: len(recent)]
    if (anchors < 0).any():
        return None
    exclude = np.sort(index.indices(req.exclude)) if req.exclude else NO_INDICES
    seen = np.sort(history)
    items, totals, anchor_of, ok = fast.history_top(anchors, exclude, seen, req.n, HISTORY_DECAY)
    if not ok or items.size == 0:
        return None
    anchor = anchor_of.tolist()
    reasons = {k: _history_reason(used, recent[k]) for k in dict.fromkeys(anchor)}
    return CandList(
        "history",
        list(map(fast.item_ids.__getitem__, items.tolist())),
        totals.tolist(),
        list(map(reasons.__getitem__, anchor)),
    )


def _history_pairs(
    req: SourceRequest, recent: tuple[str, ...], chain: list[ModelHandle]
) -> CandList | None:
    scores: dict[str, float] = {}
    best_from: dict[str, tuple[float, str, ModelHandle]] = {}
    hist = set(req.history)
    for k, anchor in enumerate(recent):
        w = HISTORY_DECAY**k
        pairs: list[tuple[str, float]] = []
        used = chain[0]
        for m in chain:
            pairs = _safe(
                lambda m=m, a=anchor: m.similar(a, req.n, req.exclude), f"similar({m.name})"
            )
            if pairs:
                used = m
                break
        if not pairs:
            continue
        top = max(s for _, s in pairs) or 1.0
        for i, s in pairs:
            if i in hist or i in req.exclude:
                continue
            v = w * (s / top if top > 0 else 0.0)
            scores[i] = scores.get(i, 0.0) + v
            if i not in best_from or v > best_from[i][0]:
                best_from[i] = (v, anchor, used)
    if not scores:
        return None
    best = heapq.nlargest(req.n, scores.items(), key=lambda kv: kv[1])
    return CandList(
        "history",
        [i for i, _ in best],
        [s for _, s in best],
        [_history_reason(best_from[i][2], best_from[i][1]) for i, _ in best],
    )


def _ranked(ids: Sequence[str], reason: Reason, name: str, req: SourceRequest) -> list[ScoredItem]:
    out: list[ScoredItem] = []
    for rank, i in enumerate(ids):
        if i in req.exclude:
            continue
        s = 1.0 / (1.0 + rank / 10.0)
        out.append(ScoredItem(i, s, (reason,), {name: s}))
        if len(out) >= req.n:
            break
    return out


def _global_model(
    m: ModelHandle, n: int, category: tuple[str, ...] | None
) -> list[tuple[str, float]]:
    """Non-personal models (trending, popularity, new arrivals) rank from an empty history."""
    return _safe(lambda: m.recommend(n=n, category=category), m.name)


@dataclass(frozen=True, slots=True)
class _Explained:
    """A non-personal model's list, kept: its explained items and the same as columns."""

    items: list[ScoredItem]
    ids: list[str]
    scores: list[float]
    reason: Reason
    name: str
    rank: dict[str, int]
    """Item → its position in ``ids`` (the model lists each item once)."""


@dataclass
class GlobalSources:
    """Sources that do not depend on the user: trending, new arrivals, promoted, popular.

    A non-personal model's list is the same for every request at one model version, so its
    explained items are built once per (source, model version, category, depth) and only
    filtered per request; at most :data:`GLOBAL_LISTS` such lists are kept (a new model
    version pushes the old one's out)."""

    catalog: Catalog
    live: LiveCounts
    index: CatalogIndex | None = None
    views: CatalogViews = field(init=False)
    _lists: OrderedDict[tuple[object, ...], _Explained] = field(
        init=False, default_factory=OrderedDict
    )
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.views = CatalogViews(self.catalog)
        if self.index is None:
            self.index = CatalogIndex(self.catalog)

    @overload
    def trending(self, req: SourceRequest) -> list[ScoredItem]: ...

    @overload
    def trending(self, req: SourceRequest, *, packed: bool) -> list[ScoredItem] | CandList: ...

    def trending(self, req: SourceRequest, *, packed: bool = False) -> list[ScoredItem] | CandList:
        """``packed``: the model's list may come as a :class:`CandList` (what the blend
        reads without building items)."""
        m = req.models.get("trending")
        want = req.n + len(req.exclude)
        if m is not None:
            reason = Reason(source="trending", detail="trending now", model_version=m.version)
            got = self._model_list(m, reason, "trending", req, want * (4 if req.category else 1),
                                   packed=packed)
            if got is not None:
                return got
        allowed = self.catalog.items_in_category(req.category) if req.category else None
        pairs = self.live.top(want, allowed=allowed)
        if pairs:
            reason = Reason(source="trending", detail="trending now (live)")
            return self._filter(
                [ScoredItem(i, s, (reason,), {"trending": s}) for i, s in pairs], req
            )
        return self.popular(req)

    def popular(self, req: SourceRequest) -> list[ScoredItem]:
        m = req.models.get("popularity")
        if m is not None:
            reason = Reason(source="popular", detail="popular", model_version=m.version)
            want = (req.n + len(req.exclude)) * (4 if req.category else 1)
            got = self._model_list(m, reason, "popular", req, want)
            if got is not None:
                return got
        ids = self.views.best_rated()
        if req.category:
            ids = [i for i in ids if self.index.in_category(i, req.category)]  # type: ignore[union-attr]
        return _ranked(ids, Reason(source="popular", detail="well rated"), "popular", req)

    @overload
    def new_arrivals(self, req: SourceRequest) -> list[ScoredItem]: ...

    @overload
    def new_arrivals(
        self, req: SourceRequest, *, packed: bool
    ) -> list[ScoredItem] | CandList: ...

    def new_arrivals(
        self, req: SourceRequest, *, packed: bool = False
    ) -> list[ScoredItem] | CandList:
        m = req.models.get("new_arrivals")
        if m is not None:
            reason = Reason(source="new_arrival", detail="new arrival", model_version=m.version)
            got = self._model_list(m, reason, "new_arrivals", req, req.n + len(req.exclude),
                                   packed=packed)
            if got is not None:
                return got
        return _ranked(
            self.views.newest(),
            Reason(source="new_arrival", detail="new arrival"),
            "new_arrivals",
            req,
        )

    def promoted(self, req: SourceRequest, *, packed: bool = False) -> list[ScoredItem]:
        """(No model: ``packed`` changes nothing.)"""
        return _ranked(
            self.views.promoted(), Reason(source="promoted", detail="promoted"), "promoted", req
        )

    def cached_lists(self) -> int:
        """How many explained lists are kept (at most :data:`GLOBAL_LISTS`)."""
        return len(self._lists)

    @overload
    def _model_list(
        self, m: ModelHandle, reason: Reason, name: str, req: SourceRequest, want: int
    ) -> list[ScoredItem] | None: ...

    @overload
    def _model_list(
        self, m: ModelHandle, reason: Reason, name: str, req: SourceRequest, want: int, *,
        packed: bool,
    ) -> list[ScoredItem] | CandList | None: ...

    def _model_list(
        self, m: ModelHandle, reason: Reason, name: str, req: SourceRequest, want: int, *,
        packed: bool = False,
    ) -> list[ScoredItem] | CandList | None:
        """The first ``req.n`` items of the model's list not excluded and in the request's
        category, from the kept explained list of depth :func:`list_depth` (``want``); None
        when the model gives no list. ``packed``: as a :class:`CandList`."""
        key = (name, m.version, req.category, list_depth(want))
        with self._lock:
            got = self._lists.get(key)
            if got is not None:
                self._lists.move_to_end(key)
        if got is None:
            pairs = _global_model(m, list_depth(want), req.category)
            ids = [i for i, _ in pairs]
            got = _Explained(
                [ScoredItem(i, s, (reason,), {name: s}) for i, s in pairs],
                ids, [s for _, s in pairs], reason, name,
                dict(zip(ids, range(len(ids)), strict=True)),
            )
            with self._lock:
                self._lists[key] = got
                while len(self._lists) > GLOBAL_LISTS:
                    self._lists.popitem(last=False)
        if not got.items:
            return None
        return self._filter_packed(got, req) if packed else self._filter(got.items, req)

    def _filter_packed(self, got: _Explained, req: SourceRequest) -> CandList:
        """:meth:`_filter` of a kept list, as a :class:`CandList`."""
        n, exclude = req.n, req.exclude
        if n > 0 and not req.category and len(got.rank) == len(got.ids):
            # the head minus the excluded items' positions, cut as slices
            ids: list[str] = []
            scores: list[float] = []
            start = 0
            cut = {p for p in map(got.rank.get, exclude) if p is not None}
            for end in sorted({*cut, len(got.ids)}):
                take = min(end, start + n - len(ids))
                ids += got.ids[start:take]
                scores += got.scores[start:take]
                if len(ids) >= n:
                    break
                start = end + 1
            return CandList(got.name, ids, scores, got.reason)
        ids = []
        scores = []
        index = self.index
        for i, s in zip(got.ids, got.scores, strict=True):
            if i in exclude or (
                req.category and not index.in_category(i, req.category)  # type: ignore[union-attr]
            ):
                continue
            ids.append(i)
            scores.append(s)
            if len(ids) >= n:
                break
        return CandList(got.name, ids, scores, got.reason)

    def _filter(self, items: list[ScoredItem], req: SourceRequest) -> list[ScoredItem]:
        out = []
        index = self.index
        for it in items:
            if it.item_id in req.exclude or (
                req.category and not index.in_category(it.item_id, req.category)  # type: ignore[union-attr]
            ):
                continue
            out.append(it)
            if len(out) >= req.n:
                break
        return out
