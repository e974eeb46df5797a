"""The learned ranker's features: one function, :func:`feature_matrix` (and its wrapper
:func:`features` over :class:`Candidate` objects), used online and offline.

It sits with the models (below both the online pipeline and training, which both call it).

Online, ``ranking.learned`` calls it on the candidates the pipeline blended (their score
breakdowns), the shopper's :class:`~ranking.profile.UserProfile` of this moment and the serving
catalog. Offline, ``training.ranker_data`` calls it on the lists the served log recorded (the
same breakdowns), the profile rebuilt by replaying the events before the request through a
:class:`~ranking.profile.ProfileStore`, and the same catalog file. Item statistics that are
not in the catalog (popularity, trend, the usual price of a leaf) travel with the ranker
model (:class:`ItemStats`), so both sides read the same numbers.

Missing values are NaN (LightGBM routes them on their own): a source that did not propose an
item, an item without rating, a shopper without history.

Cost: Python reads only what only Python can (each breakdown's entries, ids → table rows, the
shopper's affinities by code); one numba loop (``_fill``) writes every column — ≈ 0.15 ms for
200 candidates (``bench/ranker.py``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain, repeat
from typing import Any, Protocol

import numpy as np
from numba import njit

from data.catalog import Catalog
from data.models import CATEGORY_SEPARATOR


class Shopper(Protocol):
    """What the features read of a shopper (``ranking.profile.UserProfile`` has it)."""

    @property
    def personalizable(self) -> bool: ...

    @property
    def recent_items(self) -> tuple[str, ...]: ...

    @property
    def category_affinity(self) -> Mapping[str, float]: ...

    @property
    def brand_affinity(self) -> Mapping[str, float]: ...

SOURCES: tuple[str, ...] = (
    "cf", "history", "trending", "popular", "new_arrivals", "promoted", "search", "personalization",
)
"""Score-breakdown keys of the candidate sources, each giving a score and a rank feature."""

NEW_DAYS = 30.0
RECENT_FOR_PRICE = 20
"""How many of the shopper's recent items set their price band."""
RECENT_FOR_SESSION = 10
"""How many of the shopper's most recent items stand for "this session" (the profile keeps
the order of recent items, not their times)."""
NAN = math.nan

FEATURES: tuple[str, ...] = (
    *(f"{s}_{k}" for s in SOURCES for k in ("score", "rank")),
    "blend_score", "blend_rank",
    "popularity", "trend", "age_days", "is_new", "log_price", "relprice", "log_stock", "rating",
    "cat_affinity", "cat_affinity_share", "top_cat_affinity", "brand_affinity",
    "brand_affinity_share", "price_band", "price_vs_band",
    "n_recent", "in_recent", "same_leaf_as_last", "recent_same_leaf",
    "lexical_score",
)
"""Column names of the feature matrix, in order (saved with every ranker version)."""
_SLOT = {s: j for j, s in enumerate(SOURCES)}


class ShopperStore(Protocol):
    """Profiles fed with events in time order (``ranking.profile.ProfileStore``): what the
    ranker's training lists replay to see each shopper as serving saw them."""

    def record(self, events: Sequence[Any]) -> int: ...

    def get(self, user_id: str) -> Shopper: ...


@dataclass(frozen=True)
class ItemStats:
    """Per-item numbers the catalog does not hold, computed at training time from events."""

    popularity: Mapping[str, float] = field(default_factory=dict)
    """log1p of the item's weighted events (views 1, clicks 1, carts 3, purchases 5)."""
    trend: Mapping[str, float] = field(default_factory=dict)
    """log of (events in the last 3 days + 1) / (the 3-day average over the window + 1)."""
    leaf_price: Mapping[str, float] = field(default_factory=dict)
    """Category path → median price of its items."""

    def to_json(self) -> dict[str, object]:
        return {"popularity": dict(self.popularity), "trend": dict(self.trend),
                "leaf_price": dict(self.leaf_price)}

    @classmethod
    def from_json(cls, d: Mapping[str, Mapping[str, float]]) -> ItemStats:
        return cls({k: float(v) for k, v in d.get("popularity", {}).items()},
                   {k: float(v) for k, v in d.get("trend", {}).items()},
                   {k: float(v) for k, v in d.get("leaf_price", {}).items()})


class ItemTable:
    """The per-item inputs of the features as arrays: a row per catalog item (and per item
    :meth:`refresh` was told about), from the catalog's facts and the model's statistics."""

    def __init__(self, catalog: Catalog, stats: ItemStats) -> None:
        self.catalog = catalog
        self.stats = stats
        self.row: dict[str, int] = {}
        self.leaf_code: dict[str, int] = {}
        self.brand_code: dict[str, int] = {}
        n = len(catalog.ids())
        self._cols = np.full((max(n, 1), 8), np.nan)
        """popularity, trend, created_us, log_price, relprice, log_stock, rating, live."""
        self._codes = np.full((max(n, 1), 2), -1, dtype=np.int64)
        """leaf code, brand code (-1: none)."""
        self._lock = threading.Lock()
        self.refresh(catalog.ids())

    def _code(self, table: dict[str, int], key: str | None) -> int:
        if key is None:
            return -1
        got = table.get(key)
        if got is None:
            got = table[key] = len(table)
        return got

    def refresh(self, item_ids: Sequence[str]) -> None:
        """Read these items again from the catalog (upserted, deleted or new)."""
        st, cat = self.stats, self.catalog
        with self._lock:
            for iid in item_ids:
                r = self.row.get(iid)
                if r is None:
                    r = len(self.row)
                    if r >= len(self._cols):  # grow by half
                        extra = max(16, len(self._cols) // 2)
                        self._cols = np.vstack([self._cols, np.full((extra, 8), np.nan)])
                        self._codes = np.vstack([self._codes, np.full((extra, 2), -1, np.int64)])
                    self.row[iid] = r
                f = cat.facts(iid)
                if f is None:
                    self._cols[r] = np.nan
                    self._codes[r] = -1
                    continue
                path = CATEGORY_SEPARATOR.join(f.category)
                usual = st.leaf_price.get(path)
                self._cols[r] = (
                    st.popularity.get(iid, 0.0), st.trend.get(iid, 0.0), float(f.created_us),
                    math.log(f.price) if f.price > 0 else NAN,
                    f.price / usual if usual else NAN, math.log1p(max(f.stock, 0)),
                    NAN if f.rating is None else f.rating, 1.0,
                )
                self._codes[r] = (self._code(self.leaf_code, path),
                                  self._code(self.brand_code, f.brand))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The columns and codes arrays as they are now (rows past their end are unknown)."""
        return self._cols, self._codes

    def rows(self, item_ids: Sequence[str]) -> np.ndarray:
        """Each item's row (-1: never in the catalog)."""
        return np.fromiter(map(self.row.get, item_ids, repeat(-1)), dtype=np.int64,
                           count=len(item_ids))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One item to score: its id and the score breakdown the blend gave it (a search hit's
    lexical score is its ``search`` entry)."""

    item_id: str
    breakdown: Mapping[str, float]


class _Columns(dict[str, int]):
    """Breakdown key → column of the source block: a source's own, the blend's (``blend:*``
    shares are summed), or -1 (not a feature). Filled on first sight of a key."""

    def __missing__(self, key: str) -> int:
        j = _SLOT.get(key)
        col = j if j is not None else (len(SOURCES) if key.startswith("blend:") else -1)
        if len(self) < 4096:  # keys are source names; bound it anyway
            self[key] = col
        return col


_COLUMNS = _Columns()


def features(
    candidates: Sequence[Candidate],
    profile: Shopper,
    items: ItemTable,
    now: datetime,
) -> np.ndarray:
    """The feature matrix (``len(candidates)`` × ``len(FEATURES)``, float32) of one request."""
    return feature_matrix([c.item_id for c in candidates], [c.breakdown for c in candidates],
                          profile, items, now)


def feature_matrix(
    ids: Sequence[str],
    breakdowns: Sequence[Mapping[str, float]],
    profile: Shopper,
    items: ItemTable,
    now: datetime,
) -> np.ndarray:
    """:func:`features` of the items ``ids`` with these breakdowns (what serving calls: no
    object per candidate). Column-major, so each feature is one contiguous column.

    Python reads what only Python can (the breakdowns' entries, item ids to table rows, the
    shopper's affinities by leaf and brand code); one compiled loop computes every column."""
    n = len(ids)
    out = np.empty((n, len(FEATURES)), dtype=np.float32, order="F")
    if n == 0:
        return out
    cols_, codes_ = items.arrays()  # one snapshot: refresh may grow the table meanwhile
    lens = np.fromiter(map(len, breakdowns), np.int64, n)
    total = int(lens.sum())
    entry_col = np.fromiter(map(_COLUMNS.__getitem__, chain.from_iterable(breakdowns)),
                            np.int64, total)
    entry_val = np.fromiter(chain.from_iterable(bd.values() for bd in breakdowns), np.float64,
                            total)
    rows = items.rows(ids)
    personal = profile.personalizable
    recent = profile.recent_items if personal else ()
    cat_aff = np.zeros(len(items.leaf_code) + 1)
    brand_aff = np.zeros(len(items.brand_code) + 1)
    if personal:
        for path, v in profile.category_affinity.items():
            code = items.leaf_code.get(path)
            if code is not None:
                cat_aff[code] = v
        for b, v in profile.brand_affinity.items():
            code = items.brand_code.get(b)
            if code is not None:
                brand_aff[code] = v
    has_top = personal and len(profile.category_affinity) > 0
    in_recent = np.fromiter(map(frozenset(recent).__contains__, ids), np.bool_, n)
    _fill(out, lens, entry_col, entry_val, rows, cols_, codes_, now.timestamp() * 1e6,
          cat_aff, brand_aff, has_top, items.rows(recent[:RECENT_FOR_PRICE]), float(len(recent)),
          in_recent)
    return out


_W = len(SOURCES) + 1  # the source block: each source, then the blend
_SEARCH = _SLOT["search"]
_LEN_SRC = 2 * len(SOURCES)


@njit(cache=True)
def _rank_into(out, col, values):  # type: ignore[no-untyped-def]
    """``out[:, col]`` = 1-based rank of ``values`` (highest first, ties in row order), NaN
    for NaN."""
    n = values.shape[0]
    key = np.empty(n)
    for i in range(n):
        key[i] = np.inf if np.isnan(values[i]) else -values[i]
    order = np.argsort(key, kind="mergesort")
    for r in range(n):
        i = order[r]
        out[i, col] = np.nan if np.isnan(values[i]) else r + 1


@njit(cache=True)
def _fill(out, lens, entry_col, entry_val, rows, cols, codes, now_us, cat_aff, brand_aff,  # type: ignore[no-untyped-def]
          has_top, recent_rows, n_recent, in_recent):
    n = out.shape[0]
    nan = np.nan
    # ---- the sources (and the blend: the sum of the blend shares), ranked among candidates
    src = np.full((n, _W), nan)
    src[:, _W - 1] = 0.0
    e = 0
    for i in range(n):
        for _ in range(lens[i]):
            c = entry_col[e]
            if c == _W - 1:
                src[i, c] += entry_val[e]
            elif c >= 0:
                src[i, c] = entry_val[e]
            e += 1
    for s in range(_W):
        out[:, 2 * s] = src[:, s]
        _rank_into(out, 2 * s + 1, src[:, s])
    # ---- the shopper: affinity totals, price band of recent items, this session's leaves
    n_leaf = cat_aff.shape[0]
    cat_total = cat_aff.sum()
    cat_total = nan if cat_total == 0 else cat_total
    brand_total = brand_aff.sum()
    brand_total = nan if brand_total == 0 else brand_total
    top_cat = cat_aff.max() if has_top else nan
    price_sum, priced = 0.0, 0
    session = np.zeros(n_leaf)
    last_leaf, in_session = -2, 0
    for k in range(recent_rows.shape[0]):
        r = recent_rows[k]
        if r < 0 or r >= cols.shape[0]:
            continue
        if not np.isnan(cols[r, 3]):
            price_sum += cols[r, 3]
            priced += 1
    for k in range(min(recent_rows.shape[0], RECENT_FOR_SESSION)):
        r = recent_rows[k]
        if 0 <= r < cols.shape[0] and 0 <= codes[r, 0] < n_leaf:
            if in_session == 0:
                last_leaf = codes[r, 0]
            session[codes[r, 0]] += 1
            in_session += 1
    band = price_sum / priced if priced else nan
    # ---- the items, each with the shopper
    j = _LEN_SRC + 2
    for i in range(n):
        r = rows[i]
        known = 0 <= r < cols.shape[0]
        leaf = codes[r, 0] if known else -1
        brand = codes[r, 1] if known else -1
        for c in range(2):  # popularity, trend
            out[i, j + c] = cols[r, c] if known else nan
        age = (now_us - cols[r, 2]) / 86_400e6 if known else nan
        out[i, j + 2] = age
        out[i, j + 3] = nan if np.isnan(age) else (1.0 if age < NEW_DAYS else 0.0)
        for c in range(4):  # log_price, relprice, log_stock, rating
            out[i, j + 4 + c] = cols[r, 3 + c] if known else nan
        log_price = cols[r, 3] if known else nan
        has_leaf = leaf >= 0
        ca = (cat_aff[leaf] if leaf < n_leaf else 0.0) if has_leaf else nan
        if brand >= 0:
            ba = brand_aff[brand] if brand < brand_aff.shape[0] else 0.0
        else:
            ba = 0.0 if has_leaf else nan
        out[i, j + 8] = ca
        out[i, j + 9] = ca / cat_total
        out[i, j + 10] = top_cat if has_leaf else nan
        out[i, j + 11] = ba
        out[i, j + 12] = ba / brand_total
        out[i, j + 13] = band if has_leaf else nan
        out[i, j + 14] = log_price - band
        out[i, j + 15] = n_recent
        out[i, j + 16] = 1.0 if in_recent[i] else 0.0
        if not has_leaf:
            out[i, j + 17] = nan
            out[i, j + 18] = nan
        else:
            out[i, j + 17] = nan if in_session == 0 else (1.0 if leaf == last_leaf else 0.0)
            out[i, j + 18] = session[leaf] if leaf < n_leaf else 0.0
        out[i, j + 19] = src[i, _SEARCH]  # lexical_score: a search hit's lexical score
