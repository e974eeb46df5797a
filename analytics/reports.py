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
Only events between the experiment's start and stop count. Which surface and variant an event
belongs to is :mod:`analytics.attribution`; the intervals and the variant-vs-control tests
(Bonferroni across variants) are :mod:`analytics.statistics`.

Computation is columnar: the events (an Arrow table, :data:`REPORT_COLUMNS`) become integer
codes (user, day, type, surface, variant, order) and every slice is a numpy group-by over
them (:mod:`analytics.groupby`) — no Python work per event.
``tests/analytics/report_reference.py`` computes the same report event by event; the tests
check both agree on messy random traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.attribution import attribute_variants, context_variants, served_rows
from analytics.groupby import distinct_rows, filled, group_rows, mean_by, string_codes
from analytics.statistics import (
    METRICS,
    Comparison,
    Estimate,
    MetricName,
    compare,
    mean_estimate,
    wilson,
)
from data.catalog import Catalog
from data.event_table import events_to_table
from data.models import Event
from merch.errors import ReportError
from merch.experiments import Experiment
from merch.request_log import RequestLog


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


def _columns(
    t: pa.Table, catalog: Catalog | None, served: pa.Table | None, served_at: np.ndarray
) -> _Columns:
    user, user_ids = string_codes(t.column("user_id"))
    type_codes, type_names = string_codes(t.column("type"))
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
    value = filled(picked.column("value"), math.nan).astype(np.float64)
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
    sess, sess_ids = string_codes(session)
    order = np.where(sess >= 0, sess, len(sess_ids) + day[money])

    surface_col = t.column("surface")
    if served is not None and served.num_rows:
        at = pa.array(served_at, mask=served_at < 0)
        surface_col = pc.coalesce(surface_col, pc.take(served.column("surface"), at))
    surface, surface_names = string_codes(surface_col)
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
    gu_g, gu_u, _ = distinct_rows(ga[keep], active.user[keep], active.day[keep])
    (users_g, _u), inv = group_rows(gu_g, gu_u)
    users = np.bincount(users_g, minlength=k)
    retained = np.bincount(users_g[np.bincount(inv) >= 2], minlength=k)

    cart = np.flatnonzero((c.kind == _CART) & (g >= 0))
    cart_g, _u = distinct_rows(g[cart], c.user[cart])
    cart_users = np.bincount(cart_g, minlength=k)

    mg = g[c.money]
    m_keep = mg >= 0
    m_user, m_kind, m_day = c.user[c.money], c.kind[c.money], c.day[c.money]
    buy = m_keep & (m_kind == _BUY)
    bg, bu, _d = distinct_rows(mg[buy], m_user[buy], m_day[buy])
    (buyer_g, _u), inv = group_rows(bg, bu)
    buyers = np.bincount(buyer_g, minlength=k)
    repeat = np.bincount(buyer_g[np.bincount(inv) >= 2], minlength=k)

    signed = np.where(m_kind == _BUY, c.revenue, -c.revenue)[m_keep]
    (rev_g, _u), inv = group_rows(mg[m_keep], m_user[m_keep])
    per_user = np.bincount(inv, weights=signed, minlength=len(rev_g))
    rpu_mean, rpu_var = mean_by(rev_g, per_user, users, k)
    total_revenue = np.bincount(rev_g, weights=per_user, minlength=k)

    (ord_g, _u, _o), inv = group_rows(mg[buy], m_user[buy], c.order[buy])
    order_value = np.bincount(inv, weights=c.revenue[buy], minlength=len(ord_g))
    orders = np.bincount(ord_g, minlength=k)
    aov_mean, aov_var = mean_by(ord_g, order_value, orders, k)

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


def _window(
    events: pa.Table | Iterable[Event], start: datetime | None, end: datetime | None
) -> pa.Table:
    """The :data:`REPORT_COLUMNS` of the events in [start, end), timestamps in UTC µs."""
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
    return t


def _from_log(
    t: pa.Table, experiment: Experiment | None, requests: RequestLog | None
) -> tuple[np.ndarray, pa.Table | None, np.ndarray, list[str]]:
    """Each event's variant by its own context, and what the request log adds (see
    :func:`analytics.attribution.served_rows`): the logged rows, each event's row in them
    (-1 = none) and the users exposed to the experiment."""
    ctx_variant = (
        context_variants(t, experiment)
        if experiment is not None
        else np.full(t.num_rows, -1, np.int64)
    )
    served: pa.Table | None = None
    served_at = np.full(t.num_rows, -1, np.int64)  # each event's row in ``served``
    exposed: list[str] = []
    if requests is not None and t.num_rows:
        # the log is read for events without a surface, and (experiment) without a variant
        need = filled(pc.is_null(t.column("surface")), True).astype(bool)
        if experiment is not None:
            need |= ctx_variant < 0
        eid = experiment.experiment_id if experiment is not None else None
        served, served_at, exposed = served_rows(requests, t, need, eid)
    return ctx_variant, served, served_at, exposed


def _comparisons(rows: Sequence[KpiRow], control: str, alpha: float) -> list[Comparison]:
    """Every variant against the control on every metric, at ``alpha`` split over the variants
    (Bonferroni)."""
    base = next(r for r in rows if r.label == control)
    k = max(1, len(rows) - 1)
    return [
        compare(
            metric,
            row.label,
            base.label,
            row.metrics[metric],
            base.metrics[metric],
            alpha=alpha / k,
        )
        for row in rows
        if row.label != control
        for metric in METRICS
    ]


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
    t = _window(events, start, end)
    ctx_variant, served, served_at, exposed = _from_log(t, experiment, requests)
    c = _columns(t, catalog, served, served_at)
    how: dict[str, int] = {}
    if experiment is not None:
        variant, how = attribute_variants(
            c.user, c.user_ids, experiment, ctx_variant, served, served_at, exposed
        )
    else:
        variant = ctx_variant
    u, d, s, v = distinct_rows(c.user, c.day, c.surface + 1, variant + 1)
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
        comparisons = _comparisons(by_variant, experiment.control, alpha)

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
