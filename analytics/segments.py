"""Shopper segments (分群) and profiles (用戶畫像), computed offline from the events.

For every shopper with an event, as of the newest event (``as_of``):

* **RFM** over their orders — an order is a user's purchases in one session (or one UTC day
  without a session), as in the KPI reports: ``recency_days`` since the last order,
  ``orders``, ``monetary`` = purchase value − refund value (the event's value, else the
  catalog price). Each is scored 1–5 by quintile of rank among buyers (ties share a score;
  5 = most recent, most orders, most spent); ``rfm`` joins the three digits (``"545"``).
* **Lifecycle stage** (``lifecycle``) from the order dates and :class:`Thresholds`: ``new``
  (first order within ``new_days``), ``active`` (last order within ``at_risk_days``),
  ``at_risk`` (within ``churned_days``), ``churned`` (longer ago), ``prospect`` (no order).
* **Profile**: the top-level categories they interact with most (views 1, clicks 2,
  favorites 3, carts 4, purchases 8) and their **price band** — where the prices of what they
  look at and buy sit among the catalog's prices of the same category (``budget`` below the
  lower third, ``premium`` above the upper third, else ``mid``); without a catalog, among
  the purchase values of the log.

Everything is columnar (Arrow → numpy group-bys); only the per-user profile strings are made
in Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from analytics.errors import SegmentError

if TYPE_CHECKING:
    from data.catalog import Catalog

Stage = Literal["new", "active", "at_risk", "churned", "prospect"]
STAGES: tuple[Stage, ...] = ("new", "active", "at_risk", "churned", "prospect")
PriceBand = Literal["budget", "mid", "premium"]
SEGMENT_COLUMNS = ("user_id", "item_id", "type", "timestamp", "value", "session_id")
TYPE_WEIGHTS = {"view": 1.0, "click": 2.0, "favorite": 3.0, "add_to_cart": 4.0, "purchase": 8.0}
DAY = 86_400.0


@dataclass(frozen=True)
class Thresholds:
    new_days: float = 30.0
    at_risk_days: float = 60.0
    churned_days: float = 120.0

    def __post_init__(self) -> None:
        if self.new_days <= 0 or not 0 < self.at_risk_days < self.churned_days:
            raise SegmentError(
                "segment thresholds: need new_days > 0 and 0 < at_risk_days < churned_days, "
                f"not {self.new_days}, {self.at_risk_days}, {self.churned_days}")


@dataclass(frozen=True)
class Segments:
    """One row per shopper (``table``), as of ``as_of``."""

    table: pa.Table
    as_of: datetime
    thresholds: Thresholds

    def sizes(self) -> dict[str, int]:
        counts = pc.value_counts(self.table.column("lifecycle")).to_pylist()
        found = {c["values"]: int(c["counts"]) for c in counts}
        return {s: found.get(s, 0) for s in STAGES}

    def stage_of(self) -> dict[str, str]:
        return dict(zip(self.table.column("user_id").to_pylist(),
                        self.table.column("lifecycle").to_pylist(), strict=True))


def quintile_scores(values: np.ndarray) -> np.ndarray:
    """1–5 by rank (higher value → higher score); equal values get one score."""
    if values.size == 0:
        return np.zeros(0, np.int8)
    pct = average_ranks(values) / values.size
    return np.clip(np.ceil(pct * 5), 1, 5).astype(np.int8)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, equal values sharing the average of their ranks (what
    ``scipy.stats.rankdata(method="average")`` gives, without importing scipy.stats: about
    30 MB in every API worker, which imports this module for its stage names)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.empty(values.size, bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], values.size)
    ranks = np.empty(values.size, np.float64)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def _np(col: pa.ChunkedArray | pa.Array, fill: object) -> np.ndarray:
    return pc.fill_null(col, fill).to_numpy(zero_copy_only=False)


def compute_segments(
    events: pa.Table,
    *,
    catalog: Catalog | None = None,
    thresholds: Thresholds | None = None,
    as_of: datetime | None = None,
    exclude: set[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Segments:
    """Segments and profiles of every user in ``events`` (see the module doc).

    ``exclude``: users to leave out (no consent, erased).
    """
    th = thresholds or Thresholds()
    say = progress or (lambda _msg: None)
    missing = [c for c in SEGMENT_COLUMNS if c not in events.column_names]
    if missing:
        raise SegmentError(f"events: the table lacks column(s) {missing}")
    t = events.select(list(SEGMENT_COLUMNS)).filter(pc.is_valid(events.column("user_id")))
    if exclude:
        t = t.filter(pc.invert(pc.is_in(t.column("user_id"), pa.array(sorted(exclude)))))
    if t.num_rows == 0:
        raise SegmentError("no events with a user: nothing to segment")
    say(f"encoding {t.num_rows:,} events")
    enc = t.column("user_id").combine_chunks().dictionary_encode()
    user = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    user_ids = enc.dictionary
    n = len(user_ids)
    ts = pc.cast(t.column("timestamp"), pa.int64()).to_numpy(zero_copy_only=False) / 1e6
    end = float(ts.max()) if as_of is None else as_of.timestamp()
    etype = _np(t.column("type"), "").astype(object)
    item = t.column("item_id")
    price = _event_prices(t, catalog)
    buy = etype == "purchase"
    refund = etype == "refund"

    say("orders and RFM")
    day = np.floor(ts / DAY).astype(np.int64)
    sess = t.column("session_id").combine_chunks().dictionary_encode()
    sess_code = _np(sess.indices, -1).astype(np.int64)
    order_key = np.where(sess_code >= 0, sess_code, -(day + 1))
    bu, bk = user[buy], order_key[buy]
    pair = np.unique(np.stack([bu, bk], axis=1), axis=0) if bu.size else np.zeros((0, 2), np.int64)
    orders = np.bincount(pair[:, 0], minlength=n) if pair.size else np.zeros(n, np.int64)
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, bu, ts[buy])
    np.maximum.at(last, bu, ts[buy])
    paid = np.nan_to_num(price, nan=0.0)
    monetary = (np.bincount(user[buy], weights=paid[buy], minlength=n)
                - np.bincount(user[refund], weights=paid[refund], minlength=n))
    buyer = orders > 0
    recency = np.where(buyer, (end - last) / DAY, np.nan)
    since_first = np.where(buyer, (end - first) / DAY, np.nan)
    r = np.zeros(n, np.int8)
    f = np.zeros(n, np.int8)
    m = np.zeros(n, np.int8)
    r[buyer] = quintile_scores(-recency[buyer])
    f[buyer] = quintile_scores(orders[buyer].astype(float))
    m[buyer] = quintile_scores(monetary[buyer])
    stage = np.full(n, "prospect", dtype=object)
    stage[buyer & (recency > th.churned_days)] = "churned"
    stage[buyer & (recency <= th.churned_days)] = "at_risk"
    stage[buyer & (recency <= th.at_risk_days)] = "active"
    stage[buyer & (since_first <= th.new_days)] = "new"

    say("profiles: categories and price bands")
    weights = np.array([TYPE_WEIGHTS.get(x, 0.0) for x in etype], dtype=float)
    top = _top_categories(user, item, weights, catalog, n)
    band = _price_bands(user, t, price, weights, catalog, n)
    rfm = [f"{a}{b}{c}" if a else "" for a, b, c in zip(r, f, m, strict=True)]
    table = pa.table({
        "user_id": user_ids.cast(pa.string()),
        "lifecycle": pa.array(stage.tolist(), pa.string()),
        "rfm": pa.array(rfm, pa.string()),
        "r_score": pa.array(r, pa.int8()),
        "f_score": pa.array(f, pa.int8()),
        "m_score": pa.array(m, pa.int8()),
        "recency_days": pa.array(np.round(recency, 2), pa.float64(), mask=~buyer),
        "orders": pa.array(orders, pa.int64()),
        "monetary": pa.array(np.round(monetary, 2), pa.float64()),
        "top_categories": pa.array(top, pa.string()),
        "price_band": pa.array(band, pa.string()),
    })
    return Segments(table.sort_by("user_id"), datetime.fromtimestamp(end, UTC), th)


def _event_prices(t: pa.Table, catalog: Catalog | None) -> np.ndarray:
    """Per event: its value when it is a purchase or refund (the price paid), else the
    catalog price of its item (NaN when neither is known)."""
    etype = t.column("type")
    paid = pc.or_(pc.equal(etype, "purchase"), pc.equal(etype, "refund"))
    value = pc.if_else(pc.fill_null(paid, False), t.column("value"), None)
    out = _np(pc.cast(value, pa.float64()), np.nan).astype(float)
    if catalog is not None:
        items = t.column("item_id").combine_chunks().dictionary_encode()
        cat_price = np.array([_card_price(catalog, i) for i in items.dictionary.to_pylist()]
                             + [np.nan])
        idx = _np(items.indices, -1).astype(np.int64)
        out = np.where(np.isnan(out), cat_price[idx], out)
    return out


def _card_price(catalog: Catalog, item_id: str) -> float:
    card = catalog.card(item_id)
    return float(card[3]) if card is not None else math.nan


def _top_level(catalog: Catalog | None, item_ids: list[str]) -> list[str]:
    if catalog is None:
        return [""] * len(item_ids)
    out = []
    for i in item_ids:
        card = catalog.card(i)
        out.append(card[2][0] if card is not None and card[2] else "")
    return out


def _top_categories(user: np.ndarray, item: pa.ChunkedArray, weights: np.ndarray,
                    catalog: Catalog | None, n: int, k: int = 3) -> list[str]:
    """The ``k`` top-level categories of each user's interactions, ``|``-joined."""
    if catalog is None:
        return [""] * n
    items = item.combine_chunks().dictionary_encode()
    idx = _np(items.indices, -1).astype(np.int64)
    names = _top_level(catalog, items.dictionary.to_pylist())
    cats, code = np.unique(np.array(names + [""], dtype=object), return_inverse=True)
    ev_cat = code[idx]  # -1 (no item) maps to the last entry, ""
    ok = (weights > 0) & (cats[ev_cat] != "")
    mat = sp.csr_matrix((weights[ok], (user[ok], ev_cat[ok])), shape=(n, len(cats)))
    mat.sum_duplicates()
    out = []
    for u in range(n):
        lo, hi = mat.indptr[u], mat.indptr[u + 1]
        order = np.argsort(-mat.data[lo:hi], kind="stable")[:k]
        out.append("|".join(str(cats[mat.indices[lo + j]]) for j in order))
    return out


def _price_bands(user: np.ndarray, t: pa.Table, price: np.ndarray, weights: np.ndarray,
                 catalog: Catalog | None, n: int) -> list[str]:
    """Weighted mean price percentile of each user's items → budget / mid / premium."""
    pct = np.full(len(price), np.nan)
    if catalog is not None:
        items = t.column("item_id").combine_chunks().dictionary_encode()
        idx = _np(items.indices, -1).astype(np.int64)
        names = np.array(_top_level(catalog, items.dictionary.to_pylist()) + [""], dtype=object)
        ev_cat = names[idx]
        ref: dict[str, list[float]] = {}
        for it in catalog:
            ref.setdefault(it.category[0] if it.category else "", []).append(it.price)
        sorted_ref = {c: np.sort(np.asarray(v, float)) for c, v in ref.items()}
        for c, prices in sorted_ref.items():
            sel = (ev_cat == c) & ~np.isnan(price)
            if sel.any() and prices.size:
                pct[sel] = np.searchsorted(prices, price[sel], side="right") / prices.size
    else:
        paid = pc.fill_null(pc.equal(t.column("type"), "purchase"), False).to_numpy(
            zero_copy_only=False)
        prices = np.sort(price[paid & ~np.isnan(price)])
        sel = ~np.isnan(price)
        if prices.size:
            pct[sel] = np.searchsorted(prices, price[sel], side="right") / prices.size
    ok = ~np.isnan(pct) & (weights > 0)
    w = np.bincount(user[ok], weights=weights[ok], minlength=n)
    s = np.bincount(user[ok], weights=(weights * np.nan_to_num(pct))[ok], minlength=n)
    mean = np.divide(s, w, out=np.full(n, np.nan), where=w > 0)
    return ["" if np.isnan(x) else "budget" if x < 1 / 3 else "premium" if x > 2 / 3 else "mid"
            for x in mean]


def moves(before: pa.Table | None, after: pa.Table) -> dict[str, dict[str, int]]:
    """How many shoppers went from each stage to each other stage (``"(none)"``: not in the
    earlier run); only changes are listed."""
    if before is None:
        return {}
    old = dict(zip(before.column("user_id").to_pylist(),
                   before.column("lifecycle").to_pylist(), strict=True))
    out: dict[str, dict[str, int]] = {}
    for uid, stage in zip(after.column("user_id").to_pylist(),
                          after.column("lifecycle").to_pylist(), strict=True):
        prev = old.get(uid, "(none)")
        if prev != stage:
            row = out.setdefault(prev, {})
            row[stage] = row.get(stage, 0) + 1
    return out
