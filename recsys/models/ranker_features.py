"""The learned ranker's features: one function, :func:`features`, used online and offline.

It sits with the models (below both the online pipeline and training, which both call it).

Online, ``ranking.learned`` calls it on the candidates the pipeline blended (their score
breakdowns), the shopper's :class:`~recsys.profile.UserProfile` of this moment and the serving
catalog. Offline, ``training.ranker_data`` calls it on the lists the served log recorded (the
same breakdowns), the profile rebuilt by replaying the events before the request through a
:class:`~recsys.profile.ProfileStore`, and the same catalog file. Item statistics that are
not in the catalog (popularity, trend, the usual price of a leaf) travel with the ranker
model (:class:`ItemStats`), so both sides read the same numbers.

Missing values are NaN (LightGBM routes them on their own): a source that did not propose an
item, an item without rating, a shopper without history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from data.catalog import Catalog
from data.models import CATEGORY_SEPARATOR


class Shopper(Protocol):
    """What the features read of a shopper (``recsys.profile.UserProfile`` has it)."""

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


@dataclass(frozen=True, slots=True)
class Candidate:
    """One item to score: its id and the score breakdown the blend gave it."""

    item_id: str
    breakdown: Mapping[str, float]
    lexical_score: float | None = None


def _ranks(values: list[float]) -> list[float]:
    """1-based rank of each value among the non-NaN ones, highest first (NaN stays NaN)."""
    present = sorted((i for i, v in enumerate(values) if v == v), key=lambda i: -values[i])
    out = [NAN] * len(values)
    for r, i in enumerate(present):
        out[i] = float(r + 1)
    return out


def features(
    candidates: Sequence[Candidate],
    profile: Shopper,
    catalog: Catalog,
    stats: ItemStats,
    now: datetime,
) -> np.ndarray:
    """The feature matrix (``len(candidates)`` × ``len(FEATURES)``, float32) of one request."""
    n = len(candidates)
    now_us = now.timestamp() * 1e6
    # ---- the shopper, once per request
    personal = profile.personalizable
    cat_aff = dict(profile.category_affinity) if personal else {}
    brand_aff = dict(profile.brand_affinity) if personal else {}
    cat_total = sum(cat_aff.values()) or NAN
    brand_total = sum(brand_aff.values()) or NAN
    top_cat = max(cat_aff.values(), default=NAN)
    recent = profile.recent_items if personal else ()
    recent_set = set(recent)
    logs = []
    session_leaves: list[str] = []
    for k, iid in enumerate(recent[:RECENT_FOR_PRICE]):
        f = catalog.facts(iid)
        if f is None:
            continue
        if f.price > 0:
            logs.append(math.log(f.price))
        if k < RECENT_FOR_SESSION:
            session_leaves.append(f.category_path)
    band = sum(logs) / len(logs) if logs else NAN
    last_leaf = session_leaves[0] if session_leaves else None
    # ---- the sources, ranked among these candidates
    bds = [c.breakdown for c in candidates]
    cols: list[list[float]] = []
    for s in SOURCES:
        col = [bd.get(s, NAN) for bd in bds]
        cols.append(col)
        cols.append(_ranks(col))
    blend = [sum(v for k, v in bd.items() if k.startswith("blend:")) for bd in bds]
    cols.append(blend)
    cols.append(_ranks(blend))
    pop, trend, leaf_price = stats.popularity, stats.trend, stats.leaf_price
    facts = catalog.facts
    n_recent = float(len(recent))
    per_item: list[tuple[float, ...]] = []
    missing = (NAN,) * 13
    for c in candidates:
        iid = c.item_id
        f = facts(iid)
        head = (pop.get(iid, 0.0), trend.get(iid, 0.0))
        tail = (n_recent, float(iid in recent_set))
        lex = NAN if c.lexical_score is None else c.lexical_score
        if f is None:
            per_item.append((*head, *missing, *tail, NAN, NAN, lex))
            continue
        path = CATEGORY_SEPARATOR.join(f.category)
        age = (now_us - f.created_us) / 86_400e6
        price = f.price
        lp = math.log(price) if price > 0 else NAN
        usual = leaf_price.get(path)
        ca = cat_aff.get(path, 0.0)
        ba = brand_aff.get(f.brand, 0.0) if f.brand else 0.0
        per_item.append((
            *head, age, float(age < NEW_DAYS), lp, price / usual if usual else NAN,
            math.log1p(max(f.stock, 0)), NAN if f.rating is None else f.rating,
            ca, ca / cat_total, top_cat, ba, ba / brand_total, band, lp - band, *tail,
            NAN if last_leaf is None else float(path == last_leaf),
            float(session_leaves.count(path)), lex,
        ))
    out = np.empty((n, len(FEATURES)), dtype=np.float32)
    k = len(cols)
    if n:
        out[:, :k] = np.array(cols, dtype=np.float32).T
        out[:, k:] = np.array(per_item, dtype=np.float32)
    return out
