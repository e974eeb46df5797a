"""The learned ranker's features: one function, :func:`features`, used online and offline.

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
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np

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

    def gather(self, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows of the columns, rows of the codes, known) for these items; unknown items
        (never in the catalog) get NaN columns and -1 codes."""
        get = self.row.get
        idx = np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))
        known = idx >= 0
        cols = self._cols[np.where(known, idx, 0)]
        codes = self._codes[np.where(known, idx, 0)]
        cols[~known] = np.nan
        codes[~known] = -1
        return cols, codes, known


@dataclass(frozen=True, slots=True)
class Candidate:
    """One item to score: its id and the score breakdown the blend gave it."""

    item_id: str
    breakdown: Mapping[str, float]
    lexical_score: float | None = None


def _ranks(m: np.ndarray) -> np.ndarray:
    """1-based rank of each value within its column, highest first; NaN stays NaN."""
    order = np.argsort(np.where(np.isnan(m), np.inf, -m), axis=0, kind="stable")
    ranks = np.empty_like(m)
    np.put_along_axis(ranks, order, np.arange(1, len(m) + 1, dtype=m.dtype)[:, None], axis=0)
    ranks[np.isnan(m)] = np.nan
    return ranks


def features(
    candidates: Sequence[Candidate],
    profile: Shopper,
    items: ItemTable,
    now: datetime,
) -> np.ndarray:
    """The feature matrix (``len(candidates)`` × ``len(FEATURES)``, float32) of one request."""
    n = len(candidates)
    out = np.empty((n, len(FEATURES)), dtype=np.float32)
    if n == 0:
        return out
    # ---- the sources (and the blend: the sum of the blend shares), ranked among candidates
    width = len(SOURCES) + 1
    flat = [NAN] * (n * width)
    slot = _SLOT
    for i, c in enumerate(candidates):
        base = i * width
        blend = 0.0
        for key, v in c.breakdown.items():
            j = slot.get(key)
            if j is not None:
                flat[base + j] = v
            elif key[:6] == "blend:":
                blend += v
        flat[base + width - 1] = blend
    src = np.array(flat).reshape(n, width)
    ranks = _ranks(src)
    k = 2 * len(SOURCES)
    out[:, 0:k:2] = src[:, :-1]
    out[:, 1:k:2] = ranks[:, :-1]
    out[:, k] = src[:, -1]
    out[:, k + 1] = ranks[:, -1]
    # ---- the items
    ids = [c.item_id for c in candidates]
    cols, codes, _known = items.gather(ids)
    pop, trend, created, log_price, relprice, log_stock, rating = cols[:, :7].T
    age = (now.timestamp() * 1e6 - created) / 86_400e6
    leaf, brand = codes[:, 0], codes[:, 1]
    # ---- the shopper, once per request, then per item by leaf / brand code
    personal = profile.personalizable
    recent = profile.recent_items if personal else ()
    n_leaf = len(items.leaf_code) + 1
    cat_aff = np.zeros(n_leaf)
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
    cat_total = cat_aff.sum() or NAN
    brand_total = brand_aff.sum() or NAN
    top_cat = cat_aff.max() if personal and len(profile.category_affinity) else NAN
    rcols, rcodes, rknown = items.gather(recent[:RECENT_FOR_PRICE])
    prices = rcols[:, 3]
    band = float(np.nanmean(prices)) if rknown.any() and not np.isnan(prices).all() else NAN
    session = rcodes[:RECENT_FOR_SESSION, 0]
    session = session[session >= 0]
    last_leaf = int(session[0]) if len(session) else -2
    session_count = np.bincount(session, minlength=n_leaf) if len(session) else np.zeros(n_leaf)
    ca = np.where(leaf >= 0, cat_aff[leaf], NAN)
    ba = np.where(brand >= 0, brand_aff[brand], np.where(leaf >= 0, 0.0, NAN))
    recent_set = set(recent)
    j = k + 2
    for col in (
        pop, trend, age, np.where(np.isnan(age), NAN, age < NEW_DAYS), log_price, relprice,
        log_stock, rating, ca, ca / cat_total, np.where(leaf >= 0, top_cat, NAN), ba,
        ba / brand_total, np.where(leaf >= 0, band, NAN), log_price - band,
        np.full(n, float(len(recent))),
        np.fromiter((i in recent_set for i in ids), dtype=np.float64, count=n),
        np.where(leaf >= 0, (leaf == last_leaf) if last_leaf != -2 else NAN, NAN),
        np.where(leaf >= 0, session_count[leaf], NAN),
    ):
        out[:, j] = col
        j += 1
    out[:, j] = [NAN if c.lexical_score is None else c.lexical_score for c in candidates]
    return out
