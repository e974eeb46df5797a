"""KPI reports from the event log: overall, per day, per surface and per experiment variant.

Definitions (one slice = the events attributed to it; "users" = distinct users with an event):

================  ==========================================================================
impressions       impression events
ctr               clicks / impressions (Wilson interval; clicks capped at impressions)
add_to_cart_rate  users with an add_to_cart / users (Wilson)
conversion_rate   users with a purchase / users (Wilson)
revenue_per_user  (purchase value − refund value) summed per user, averaged over all users,
                  zeros included (normal-approximation interval)
aov               revenue per order; an order = a user's purchases in one session (or day)
repurchase_rate   buyers with orders on two or more days / buyers (Wilson)
retention         users active on two or more days / users (Wilson)
================  ==========================================================================

Purchase value is the event's ``value`` (the price paid), else the catalog price, else 0.

Experiment variants: an event belongs to a variant by its own ``context.experiment/variant``,
else by its ``request_id`` in the served-request log, else — for users already exposed to the
experiment — by the user's deterministic assignment (purchases often happen away from a list).
Only events between the experiment's start and stop count.

Each variant is compared with the control: relative lift with a 95 % interval (delta method on
the log ratio), a two-sided z-test p-value, and the verdict "significant" only when p is below
0.05 divided by the number of comparisons (Bonferroni across variants). Otherwise the report
says "not yet significant" and estimates how many more units per variant would be needed to
detect the observed difference with 80 % power.

Computation is columnar: the events (an Arrow table, :data:`REPORT_COLUMNS`) become integer
codes (user, day, type, surface, variant, order) and every slice is a numpy group-by over
them — no Python work per event. ``tests/analytics/report_reference.py`` keeps the original
event-by-event implementation; the tests check both agree on messy random traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data.event_table import events_to_table
from data.models import Event
from merch.errors import ReportError
from merch.request_log import SERVED_COLUMNS

if TYPE_CHECKING:
    from data.catalog import Catalog
    from merch.experiments import Experiment
    from merch.request_log import RequestLog

MetricName = Literal[
    "ctr",
    "add_to_cart_rate",
    "conversion_rate",
    "revenue_per_user",
    "aov",
    "repurchase_rate",
    "retention",
]
METRICS: tuple[MetricName, ...] = (
    "ctr",
    "add_to_cart_rate",
    "conversion_rate",
    "revenue_per_user",
    "aov",
    "repurchase_rate",
    "retention",
)
RATE_METRICS = frozenset(
    {"ctr", "add_to_cart_rate", "conversion_rate", "repurchase_rate", "retention"}
)
METRIC_LABELS: Mapping[str, str] = {
    "ctr": "CTR",
    "add_to_cart_rate": "Add-to-cart rate",
    "conversion_rate": "Conversion rate",
    "revenue_per_user": "Revenue per user",
    "aov": "Average order value",
    "repurchase_rate": "Repurchase rate",
    "retention": "Retention",
}
Z95 = 1.959963984540054
Z80 = 0.8416212335729143


# ---------------------------------------------------------------------------- statistics
@dataclass(frozen=True, slots=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    n: int
    """Denominator: impressions, users, buyers or orders."""
    successes: float | None = None
    """For rates: the numerator. For means: the sum of squares is kept in ``variance``."""
    variance: float | None = None
    """Per-unit variance (p(1−p) for a rate, sample variance for a mean)."""

    def as_dict(self) -> dict[str, float | int | None]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def wilson(k: float, n: int, z: float = Z95) -> Estimate:
    """Wilson score interval for k successes in n trials."""
    if n <= 0:
        return Estimate(None, None, None, 0, 0.0, None)
    k = min(max(k, 0.0), float(n))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), n, k, p * (1 - p))


def mean_ci(values: list[float], z: float = Z95) -> Estimate:
    """Mean with a normal-approximation interval (sample standard deviation)."""
    n = len(values)
    if n == 0:
        return Estimate(None, None, None, 0)
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(var / n)
    return Estimate(m, m - half, m + half, n, None, var)


def _norm_sf(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


@dataclass(frozen=True, slots=True)
class Comparison:
    metric: str
    variant: str
    control: str
    variant_value: float | None
    control_value: float | None
    lift: float | None
    """Relative: variant / control − 1."""
    lift_low: float | None
    lift_high: float | None
    p_value: float | None
    significant: bool
    needed_per_variant: int | None
    """Units per variant needed to detect the observed difference (80 % power), if not yet."""
    statement: str

    def as_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "variant": self.variant,
            "control": self.control,
            "variant_value": self.variant_value,
            "control_value": self.control_value,
            "lift": self.lift,
            "lift_low": self.lift_low,
            "lift_high": self.lift_high,
            "p_value": self.p_value,
            "significant": self.significant,
            "needed_per_variant": self.needed_per_variant,
            "statement": self.statement,
        }


def compare(
    metric: str, variant: str, control: str, t: Estimate, c: Estimate, *, alpha: float = 0.05
) -> Comparison:
    """Variant vs control on one metric: lift, interval, p-value and a plain statement."""
    label = METRIC_LABELS.get(metric, metric)
    unit = "impressions" if metric == "ctr" else "orders" if metric == "aov" else "users"

    def result(**kw: object) -> Comparison:
        base: dict[str, object] = dict(
            metric=metric,
            variant=variant,
            control=control,
            variant_value=t.value,
            control_value=c.value,
            lift=None,
            lift_low=None,
            lift_high=None,
            p_value=None,
            significant=False,
            needed_per_variant=None,
        )
        base.update(kw)
        return Comparison(**base)  # type: ignore[arg-type]

    if t.value is None or c.value is None or t.n < 2 or c.n < 2:
        return result(
            statement=f"{label}: not enough data yet ({variant} n={t.n}, {control} n={c.n})"
        )
    vt, vc = (t.variance or 0.0), (c.variance or 0.0)
    se = math.sqrt(vt / t.n + vc / c.n)
    diff = t.value - c.value
    if metric in RATE_METRICS:  # pooled standard error for the test of two proportions
        pooled = ((t.successes or 0.0) + (c.successes or 0.0)) / (t.n + c.n)
        se_test = math.sqrt(pooled * (1 - pooled) * (1 / t.n + 1 / c.n))
    else:
        se_test = se
    p = 2 * _norm_sf(abs(diff) / se_test) if se_test > 0 else (1.0 if diff == 0 else 0.0)
    lift = lift_low = lift_high = None
    if c.value > 0:
        lift = t.value / c.value - 1
        if t.value > 0:
            se_log = math.sqrt(vt / (t.n * t.value**2) + vc / (c.n * c.value**2))
            log_ratio = math.log(t.value / c.value)
            lift_low = math.exp(log_ratio - Z95 * se_log) - 1
            lift_high = math.exp(log_ratio + Z95 * se_log) - 1
    significant = p < alpha
    lift_txt = f"{lift:+.1%}" if lift is not None else f"{diff:+.4g}"
    ci_txt = (
        f" (95% CI {lift_low:+.1%} to {lift_high:+.1%})"
        if lift_low is not None and lift_high is not None
        else ""
    )
    if significant:
        better = "better" if diff > 0 else "worse"
        statement = (
            f"{label}: {variant} is {better} than {control} by {lift_txt}{ci_txt}, "
            f"p={p:.3g} — significant"
        )
        needed = None
    else:
        needed = None
        if diff != 0 and (vt + vc) > 0:
            needed = math.ceil((Z95 + Z80) ** 2 * (vt + vc) / diff**2)
        more = (
            f"; about {needed:,} {unit} per variant would detect a difference this size"
            if needed is not None
            else ""
        )
        statement = (
            f"{label}: not yet significant — {variant} vs {control} {lift_txt}{ci_txt}, "
            f"p={p:.3g}{more}"
        )
    return result(
        lift=lift,
        lift_low=lift_low,
        lift_high=lift_high,
        p_value=p,
        significant=significant,
        needed_per_variant=needed,
        statement=statement,
    )


# ---------------------------------------------------------------------------- slices
@dataclass(frozen=True, slots=True)
class KpiRow:
    label: str
    users: int
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int
    orders: int
    revenue: float
    metrics: Mapping[str, Estimate]

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "users": self.users,
            "impressions": self.impressions,
            "clicks": self.clicks,
            "add_to_carts": self.add_to_carts,
            "purchases": self.purchases,
            "orders": self.orders,
            "revenue": round(self.revenue, 2),
            "metrics": {k: v.as_dict() for k, v in self.metrics.items()},
        }


@dataclass(frozen=True, slots=True)
class KpiReport:
    start: datetime | None
    end: datetime | None
    events: int
    overall: KpiRow
    by_day: tuple[KpiRow, ...]
    by_surface: tuple[KpiRow, ...]
    experiment: str | None = None
    control: str | None = None
    primary_metric: str = "ctr"
    by_variant: tuple[KpiRow, ...] = ()
    by_variant_day: Mapping[str, tuple[KpiRow, ...]] = field(default_factory=dict)
    comparisons: tuple[Comparison, ...] = ()
    attribution: Mapping[str, int] = field(default_factory=dict)
    """How variant events were attributed: context, request_id, user."""

    @property
    def verdict(self) -> str:
        """The primary metric's statements, one per variant against control."""
        if self.experiment is None:
            return ""
        lines = [c.statement for c in self.comparisons if c.metric == self.primary_metric]
        return " ".join(lines) or "no variant has data yet"

    def winner(self) -> str | None:
        """The variant significantly better than control on the primary metric, if any."""
        best = [
            c
            for c in self.comparisons
            if c.metric == self.primary_metric and c.significant and (c.lift or 0) > 0
        ]
        if not best:
            control_wins = [c for c in self.comparisons if c.metric == self.primary_metric]
            if control_wins and all(c.significant and (c.lift or 0) < 0 for c in control_wins):
                return self.control
            return None
        return max(best, key=lambda c: c.lift or 0).variant

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "events": self.events,
            "overall": self.overall.as_dict(),
            "by_day": [r.as_dict() for r in self.by_day],
            "by_surface": [r.as_dict() for r in self.by_surface],
            "experiment": self.experiment,
            "control": self.control,
            "primary_metric": self.primary_metric,
            "by_variant": [r.as_dict() for r in self.by_variant],
            "by_variant_day": {k: [r.as_dict() for r in v] for k, v in self.by_variant_day.items()},
            "comparisons": [c.as_dict() for c in self.comparisons],
            "attribution": dict(self.attribution),
            "verdict": self.verdict,
            "winner": self.winner(),
        }


REPORT_COLUMNS: tuple[str, ...] = (
    "user_id",
    "item_id",
    "type",
    "timestamp",
    "value",
    "session_id",
    "request_id",
    "experiment",
    "variant",
    "surface",
)
"""The event columns a report reads (``data.loaders.read_events_table(columns=...)``)."""

_KINDS = ("impression", "click", "add_to_cart", "purchase", "refund")
_IMP, _CLICK, _CART, _BUY, _REFUND = range(5)
_DAY_US = 86_400_000_000
_TS = pa.timestamp("us", tz="UTC")
_EPOCH = date(1970, 1, 1)


def _unique(key: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort + neighbour compare: much faster than ``np.unique``'s
    hash path on millions of mostly distinct int64 keys)."""
    s = np.sort(key)
    if len(s) == 0:
        return s
    first = np.empty(len(s), bool)
    first[0] = True
    np.not_equal(s[1:], s[:-1], out=first[1:])
    return s[first]


def _unique_inverse(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and each input's index into them."""
    order = np.argsort(key)
    s = key[order]
    first = np.empty(len(s), bool)
    if len(s):
        first[0] = True
        np.not_equal(s[1:], s[:-1], out=first[1:])
    inv = np.empty(len(s), np.int64)
    inv[order] = np.cumsum(first) - 1
    return s[first], inv


def _pack(cols: Sequence[np.ndarray]) -> tuple[np.ndarray, list[int]] | None:
    """The columns packed into one int64 key (None when their ranges do not fit)."""
    sizes = [int(c.max()) + 1 for c in cols]
    if math.prod(sizes) >= 2**62:
        return None
    key = np.zeros(len(cols[0]), np.int64)
    for c, size in zip(cols, sizes, strict=True):
        key = key * size + c
    return key, sizes


def _unpack(key: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, ...]:
    out = []
    for size in reversed(sizes):
        out.append(key % size)
        key = key // size
    return tuple(reversed(out))


def _group(*cols: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Distinct rows of non-negative integer columns (sorted) and each input row's index
    into them — a columnar group-by."""
    if len(cols[0]) == 0:
        return tuple(np.zeros(0, np.int64) for _ in cols), np.zeros(0, np.int64)
    packed = _pack(cols)
    if packed is None:
        rows, inv = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
        return tuple(rows[:, j] for j in range(len(cols))), inv.reshape(-1)
    uniq, inv = _unique_inverse(packed[0])
    return _unpack(uniq, packed[1]), inv


def _distinct(*cols: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct rows of non-negative integer columns (a sort, not an argsort)."""
    if len(cols[0]) == 0:
        return tuple(np.zeros(0, np.int64) for _ in cols)
    packed = _pack(cols)
    if packed is None:
        return _group(*cols)[0]
    return _unpack(_unique(packed[0]), packed[1])


def _mean_by(
    g: np.ndarray, values: np.ndarray, n: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-group mean and sample variance of ``values`` (group ``g``) over ``n`` units per
    group, the units without a value counting as zeros. Two passes, like :func:`mean_ci`."""
    total = np.bincount(g, weights=values, minlength=k)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    dev = values - mean[g]
    present = np.bincount(g, minlength=k)
    ss = np.bincount(g, weights=dev * dev, minlength=k) + (n - present) * mean * mean
    var = np.where(n > 1, ss / np.maximum(n - 1, 1), 0.0)
    return mean, var


def mean_estimate(n: int, mean: float, var: float, z: float = Z95) -> Estimate:
    """:func:`mean_ci` from a count, a mean and a sample variance."""
    if n <= 0:
        return Estimate(None, None, None, 0)
    half = z * math.sqrt(var / n)
    return Estimate(mean, mean - half, mean + half, n, None, var)


@dataclass(frozen=True, slots=True)
class _Columns:
    """The events of the window as integer codes, one entry per event, plus the few columns
    only purchases and refunds need (indexed by ``money``)."""

    user: np.ndarray
    """Code into ``user_ids``."""
    user_ids: pa.Array
    kind: np.ndarray
    """Index into ``_KINDS``; -1 for every other type."""
    day: np.ndarray
    """Days since ``first_day`` (UTC)."""
    first_day: int
    """Days since 1970-01-01 of the first day in the window."""
    n_days: int
    surface: np.ndarray
    """Code into ``surfaces``; -1 when the event has none and its request is not logged."""
    surfaces: list[str]
    money: np.ndarray
    """Positions of the purchases and refunds."""
    revenue: np.ndarray
    """Their value (the event's, else the catalog price, else 0), by ``money`` position."""
    order: np.ndarray
    """Their order key: session code, or (no session) n_sessions + day."""


@dataclass(frozen=True, slots=True)
class _Active:
    """Distinct (user, day, surface, variant) of the events: what users and retention of any
    slice are counted from (smaller than the events, computed once)."""

    user: np.ndarray
    day: np.ndarray
    surface: np.ndarray
    variant: np.ndarray


Slicer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(day, surface, variant) codes → slice index per row, -1 = in no slice."""


def _codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dictionary codes of a string column (-1 for null) and the dictionary."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    enc = pc.dictionary_encode(arr)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, enc.dictionary


def _np(col: pa.ChunkedArray | pa.Array, fill: object) -> np.ndarray:
    return pc.fill_null(col, fill).to_numpy(zero_copy_only=False)


def _columns(
    t: pa.Table, catalog: Catalog | None, served: pa.Table | None, served_at: np.ndarray
) -> _Columns:
    user, user_ids = _codes(t.column("user_id"))
    type_codes, type_names = _codes(t.column("type"))
    names = type_names.to_pylist()
    lut = np.array([_KINDS.index(x) if x in _KINDS else -1 for x in names] + [-1], np.int64)
    kind = lut[type_codes]
    if t.num_rows:
        day_num = pc.cast(t.column("timestamp"), pa.int64()).to_numpy() // _DAY_US
        first = int(day_num.min())
        day = day_num - first
        n_days = int(day.max()) + 1
    else:
        day, first, n_days = np.zeros(0, np.int64), 0, 0

    money = np.flatnonzero((kind == _BUY) | (kind == _REFUND))
    picked = t.take(pa.array(money))
    value = _np(picked.column("value"), math.nan).astype(np.float64)
    missing = np.isnan(value)
    if missing.any():
        items = picked.column("item_id").filter(pa.array(missing)).to_pylist()
        prices: dict[str | None, float] = {}
        for i in set(items):
            item = catalog.get(i) if catalog is not None and i else None
            prices[i] = item.price if item is not None else 0.0
        value[missing] = [prices[i] for i in items]
    session = picked.column("session_id")
    session = pc.if_else(pc.equal(session, ""), pa.scalar(None, pa.string()), session)
    sess, sess_ids = _codes(session)
    order = np.where(sess >= 0, sess, len(sess_ids) + day[money])

    surface_col = t.column("surface")
    if served is not None and served.num_rows:
        at = pa.array(served_at, mask=served_at < 0)
        surface_col = pc.coalesce(surface_col, pc.take(served.column("surface"), at))
    surface, surface_names = _codes(surface_col)
    return _Columns(
        user=user,
        user_ids=user_ids,
        kind=kind,
        day=day,
        first_day=first,
        n_days=n_days,
        surface=surface,
        surfaces=surface_names.to_pylist(),
        money=money,
        revenue=value,
        order=order,
    )


def _rows(
    c: _Columns, active: _Active, variant: np.ndarray, slicer: Slicer, labels: Sequence[str]
) -> list[KpiRow]:
    """One KPI row per slice (``slicer`` maps codes to an index into ``labels``)."""
    k = len(labels)
    g = slicer(c.day, c.surface, variant)
    ok = (g >= 0) & (c.kind >= 0)
    count = np.bincount(g[ok] * len(_KINDS) + c.kind[ok], minlength=k * len(_KINDS))
    count = count.reshape(k, len(_KINDS))

    # users and retention: distinct (slice, user, day) of the active rows, days per (slice, user)
    ga = slicer(active.day, active.surface, active.variant)
    keep = ga >= 0
    gu_g, gu_u, _ = _distinct(ga[keep], active.user[keep], active.day[keep])
    (users_g, _u), inv = _group(gu_g, gu_u)
    users = np.bincount(users_g, minlength=k)
    retained = np.bincount(users_g[np.bincount(inv) >= 2], minlength=k)

    cart = np.flatnonzero((c.kind == _CART) & (g >= 0))
    cart_g, _u = _distinct(g[cart], c.user[cart])
    cart_users = np.bincount(cart_g, minlength=k)

    mg = g[c.money]
    m_keep = mg >= 0
    m_user, m_kind, m_day = c.user[c.money], c.kind[c.money], c.day[c.money]
    buy = m_keep & (m_kind == _BUY)
    bg, bu, _d = _distinct(mg[buy], m_user[buy], m_day[buy])
    (buyer_g, _u), inv = _group(bg, bu)
    buyers = np.bincount(buyer_g, minlength=k)
    repeat = np.bincount(buyer_g[np.bincount(inv) >= 2], minlength=k)

    signed = np.where(m_kind == _BUY, c.revenue, -c.revenue)[m_keep]
    (rev_g, _u), inv = _group(mg[m_keep], m_user[m_keep])
    per_user = np.bincount(inv, weights=signed, minlength=len(rev_g))
    rpu_mean, rpu_var = _mean_by(rev_g, per_user, users, k)
    total_revenue = np.bincount(rev_g, weights=per_user, minlength=k)

    (ord_g, _u, _o), inv = _group(mg[buy], m_user[buy], c.order[buy])
    order_value = np.bincount(inv, weights=c.revenue[buy], minlength=len(ord_g))
    orders = np.bincount(ord_g, minlength=k)
    aov_mean, aov_var = _mean_by(ord_g, order_value, orders, k)

    out = []
    for j, label in enumerate(labels):
        imps, clicks = int(count[j, _IMP]), int(count[j, _CLICK])
        n_users, n_buyers, n_orders = int(users[j]), int(buyers[j]), int(orders[j])
        metrics = {
            "ctr": wilson(min(clicks, imps), imps),
            "add_to_cart_rate": wilson(int(cart_users[j]), n_users),
            "conversion_rate": wilson(n_buyers, n_users),
            "revenue_per_user": mean_estimate(n_users, float(rpu_mean[j]), float(rpu_var[j])),
            "aov": mean_estimate(n_orders, float(aov_mean[j]), float(aov_var[j])),
            "repurchase_rate": wilson(int(repeat[j]), n_buyers),
            "retention": wilson(int(retained[j]), n_users),
        }
        out.append(
            KpiRow(
                label=label,
                users=n_users,
                impressions=imps,
                clicks=clicks,
                add_to_carts=int(count[j, _CART]),
                purchases=int(count[j, _BUY]),
                orders=n_orders,
                revenue=float(total_revenue[j]),
                metrics=metrics,
            )
        )
    return out


def _day_label(c: _Columns, d: int) -> str:
    return (_EPOCH + timedelta(days=c.first_day + int(d))).isoformat()


def _lookup(
    requests: RequestLog,
    ids: Sequence[str],
    *,
    experiment: str | None = None,
    columns: Sequence[str] = SERVED_COLUMNS,
) -> dict[str, list[str | None]]:
    """Logged rows of ``ids`` column-wise (any ``RequestLog``; column-wise when it can)."""
    lookup_columns = getattr(requests, "lookup_columns", None)
    if callable(lookup_columns):
        return lookup_columns(ids, experiment=experiment, columns=columns)
    rows = [
        r for r in requests.lookup(ids).values() if experiment is None or r.experiment == experiment
    ]
    return {f: [getattr(r, f) for r in rows] for f in columns}


def _served(
    requests: RequestLog, t: pa.Table, need: np.ndarray, experiment: str | None
) -> tuple[pa.Table, np.ndarray, list[str]]:
    """What the request log says about the window's events.

    Returns the logged rows of the request ids of the events in ``need`` (those whose
    surface or variant may come from the log), each event's row in them (-1 = none or not
    needed), and — with an experiment — the users of every logged request of the window
    that served that experiment (users exposed to it). Asking only for what is needed keeps
    the look-up small when the storefront echoes surface and variant itself."""
    codes, ids = _codes(t.column("request_id"))  # one hash pass over the events
    id_list = ids.to_pylist()
    needed = _unique(codes[need & (codes >= 0)])
    # when most requests are needed anyway, one read of them all (exposure from the same rows)
    # is cheaper than two
    read_all = experiment is not None and len(needed) * 2 >= len(id_list)
    if read_all:
        needed = np.arange(len(id_list), dtype=np.int64)
    served = pa.table(
        {
            f: pa.array(v, pa.string())
            for f, v in _lookup(requests, [id_list[j] for j in needed if id_list[j]]).items()
        }
    )
    row_of_id = np.full(len(id_list) + 1, -1, np.int64)  # the last entry: no request id
    at = pc.index_in(ids.take(pa.array(needed, pa.int64())), value_set=served["request_id"])
    row_of_id[needed] = _np(at, -1).astype(np.int64)
    served_at = np.where(need, row_of_id[codes], -1)
    exposed: list[str] = []
    if experiment is not None:
        if read_all:
            mine = pc.fill_null(pc.equal(served["experiment"], experiment), False)
            users = served["user_id"].filter(mine).to_pylist()
        else:
            users = _lookup(
                requests,
                [i for i in id_list if i],
                experiment=experiment,
                columns=("user_id",),
            )["user_id"]
        exposed = [u for u in set(users) if u]
    return served, served_at, exposed


def _in_context(t: pa.Table, experiment: Experiment) -> np.ndarray:
    """Each event's variant as its own context names it (-1 when not this experiment's)."""
    names = [v.name for v in experiment.variants]
    # as dictionary codes: a few distinct strings, so the comparisons run on small
    # dictionaries and numpy look-ups, not on every event's string
    exp_codes, exp_ids = _codes(t.column("experiment"))
    ours = [x == experiment.experiment_id for x in exp_ids.to_pylist()]
    is_ours = np.array([*ours, False], bool)
    var_codes, var_ids = _codes(t.column("variant"))
    name_of = np.array([names.index(x) if x in names else -1 for x in var_ids.to_pylist()] + [-1])
    ctx_variant = name_of.astype(np.int64)[var_codes]
    return np.where(is_ours[exp_codes], ctx_variant, -1)


def _variants(
    c: _Columns,
    experiment: Experiment,
    ctx_variant: np.ndarray,
    served: pa.Table | None,
    served_at: np.ndarray,
    exposed_users: list[str],
) -> tuple[np.ndarray, dict[str, int]]:
    """Each event's variant (index into the experiment's variants, -1 = not attributed) and
    how many events each attribution path found (see the module doc)."""
    from merch.experiments import assign_variant

    eid = experiment.experiment_id
    names = [v.name for v in experiment.variants]
    in_ctx = ctx_variant >= 0
    variant = ctx_variant.copy()

    by_request = np.zeros(len(variant), bool)
    if served is not None and served.num_rows:
        in_exp = _np(pc.equal(served.column("experiment"), eid), False).astype(bool)
        name_set = pa.array(names, pa.string())
        codes = _np(pc.index_in(served.column("variant"), value_set=name_set), -1)
        codes = np.where(in_exp, codes.astype(np.int64), -1)
        logged = np.where(served_at >= 0, codes[np.maximum(served_at, 0)], -1)
        by_request = (~in_ctx) & (logged >= 0)
        variant[by_request] = logged[by_request]
    exposed = np.zeros(len(c.user_ids), bool)
    exposed[c.user[in_ctx]] = True
    if exposed_users:
        seen = pc.index_in(pa.array(exposed_users, pa.string()), value_set=c.user_ids)
        exposed[pc.drop_null(seen).to_numpy(zero_copy_only=False).astype(np.int64)] = True
    by_user = (variant < 0) & exposed[c.user]
    if by_user.any():
        codes_u = _unique(c.user[by_user])
        ids_u = c.user_ids.take(pa.array(codes_u)).to_pylist()
        per_user = np.full(len(c.user_ids), -1, np.int64)
        per_user[codes_u] = [names.index(assign_variant(experiment, u).name) for u in ids_u]
        variant[by_user] = per_user[c.user[by_user]]
    how = {
        "context": int(in_ctx.sum()),
        "request_id": int(by_request.sum()),
        "user": int(by_user.sum()),
    }
    return variant, how


def build_report(
    events: pa.Table | Iterable[Event],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    experiment: Experiment | None = None,
    requests: RequestLog | None = None,
    catalog: Catalog | None = None,
    primary_metric: MetricName = "ctr",
    alpha: float = 0.05,
) -> KpiReport:
    """Compute the KPI report (see the module doc for definitions).

    ``events`` is an Arrow table with at least :data:`REPORT_COLUMNS` (e.g.
    ``EventLog.read_table`` or ``data.loaders.read_events_table``), or any iterable of events.
    """
    if start is not None and end is not None and end <= start:
        raise ReportError("end must be after start")
    if primary_metric not in METRICS:
        raise ReportError(f"metric: unknown {primary_metric!r}; choose one of {', '.join(METRICS)}")
    if experiment is not None:
        start = max(filter(None, [start, experiment.started_at]), default=None)
        end = min(filter(None, [end, experiment.stopped_at]), default=None)
    t = events if isinstance(events, pa.Table) else events_to_table(events)
    missing = [col for col in REPORT_COLUMNS if col not in t.column_names]
    if missing:
        raise ReportError(f"events: the table lacks column(s) {missing}; read {REPORT_COLUMNS}")
    t = t.select(list(REPORT_COLUMNS))
    ts = t.column("timestamp")
    if ts.type != _TS:  # e.g. a table of another unit or zone: days are UTC microseconds here
        ts = pc.cast(ts, _TS)
        t = t.set_column(t.column_names.index("timestamp"), "timestamp", ts)
    mask = None
    for bound, op in ((start, pc.greater_equal), (end, pc.less)):
        if bound is not None:
            m = op(ts, pa.scalar(bound, _TS))
            mask = m if mask is None else pc.and_(mask, m)
    if mask is not None:
        t = t.filter(mask)
    ctx_variant = (
        _in_context(t, experiment) if experiment is not None else np.full(t.num_rows, -1, np.int64)
    )
    served: pa.Table | None = None
    served_at = np.full(t.num_rows, -1, np.int64)  # each event's row in ``served``
    exposed: list[str] = []
    if requests is not None and t.num_rows:
        # the log is read for events without a surface, and (experiment) without a variant
        need = _np(pc.is_null(t.column("surface")), True).astype(bool)
        if experiment is not None:
            need |= ctx_variant < 0
        eid = experiment.experiment_id if experiment is not None else None
        served, served_at, exposed = _served(requests, t, need, eid)
    c = _columns(t, catalog, served, served_at)
    how: dict[str, int] = {}
    if experiment is not None:
        variant, how = _variants(c, experiment, ctx_variant, served, served_at, exposed)
    else:
        variant = ctx_variant
    u, d, s, v = _distinct(c.user, c.day, c.surface + 1, variant + 1)
    active = _Active(u, d, s - 1, v - 1)

    def rows(slicer: Slicer, labels: Sequence[str]) -> list[KpiRow]:
        return _rows(c, active, variant, slicer, labels)

    overall = rows(lambda day, surface, var: np.zeros(len(day), np.int64), ["overall"])[0]
    days = np.flatnonzero(np.bincount(c.day))
    day_slice = np.full(max(c.n_days, 1), -1, np.int64)
    day_slice[days] = np.arange(len(days))
    by_day = rows(lambda day, s, v: day_slice[day], [_day_label(c, x) for x in days])
    order = sorted(range(len(c.surfaces)), key=lambda j: c.surfaces[j])
    surface_slice = np.full(len(order) + 1, -1, np.int64)  # the last entry serves code -1
    surface_slice[order] = np.arange(len(order))
    by_surface = rows(lambda d, surface, v: surface_slice[surface], [c.surfaces[j] for j in order])

    by_variant: tuple[KpiRow, ...] = ()
    by_variant_day: dict[str, tuple[KpiRow, ...]] = {}
    comparisons: list[Comparison] = []
    if experiment is not None:
        names = [x.name for x in experiment.variants]
        by_variant = tuple(rows(lambda d, s, var: var, names))
        nd = max(c.n_days, 1)
        vd = rows(
            lambda day, s, var: np.where(var >= 0, var * nd + day, -1),
            [_day_label(c, j % nd) for j in range(len(names) * nd)],
        )
        present = np.zeros(len(names) * nd, bool)
        present[(variant * nd + c.day)[variant >= 0]] = True
        by_variant_day = {
            n: tuple(vd[j * nd + x] for x in range(nd) if present[j * nd + x])
            for j, n in enumerate(names)
        }
        control = next(r for r in by_variant if r.label == experiment.control)
        k = max(1, len(names) - 1)
        for row in by_variant:
            if row.label == experiment.control:
                continue
            for metric in METRICS:
                comparisons.append(
                    compare(
                        metric,
                        row.label,
                        control.label,
                        row.metrics[metric],
                        control.metrics[metric],
                        alpha=alpha / k,
                    )
                )

    return KpiReport(
        start=start,
        end=end,
        events=t.num_rows,
        overall=overall,
        by_day=tuple(by_day),
        by_surface=tuple(by_surface),
        experiment=experiment.experiment_id if experiment is not None else None,
        control=experiment.control if experiment is not None else None,
        primary_metric=primary_metric,
        by_variant=by_variant,
        by_variant_day=by_variant_day,
        comparisons=tuple(comparisons),
        attribution=how if experiment is not None else {},
    )
