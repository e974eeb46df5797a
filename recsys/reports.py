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
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

from data.models import Event
from recsys.errors import ReportError

if TYPE_CHECKING:
    from data.catalog import Catalog
    from recsys.experiment_store import RequestLog
    from recsys.experiments import Experiment

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
        statement = f"{label}: {variant} is {better} than {control} by {lift_txt}{ci_txt}, p={p:.3g} — significant"
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
        statement = f"{label}: not yet significant — {variant} vs {control} {lift_txt}{ci_txt}, p={p:.3g}{more}"
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
@dataclass
class _Acc:
    impressions: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    purchases: int = 0
    users: set[str] = field(default_factory=set)
    cart_users: set[str] = field(default_factory=set)
    revenue: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    orders: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    user_days: dict[str, set[date]] = field(default_factory=lambda: defaultdict(set))
    order_days: dict[str, set[date]] = field(default_factory=lambda: defaultdict(set))

    def add(self, e: Event, revenue: float) -> None:
        uid = e.user_id
        self.users.add(uid)
        day = e.timestamp.date()
        self.user_days[uid].add(day)
        if e.type == "impression":
            self.impressions += 1
        elif e.type == "click":
            self.clicks += 1
        elif e.type == "add_to_cart":
            self.add_to_carts += 1
            self.cart_users.add(uid)
        elif e.type == "purchase":
            self.purchases += 1
            self.revenue[uid] += revenue
            key = (uid, e.context.session_id or day.isoformat())
            self.orders[key] += revenue
            self.order_days[uid].add(day)
        elif e.type == "refund":
            self.revenue[uid] -= revenue


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


def _row(label: str, a: _Acc) -> KpiRow:
    n_users = len(a.users)
    buyers = [u for u, d in a.order_days.items() if d]
    metrics = {
        "ctr": wilson(min(a.clicks, a.impressions), a.impressions),
        "add_to_cart_rate": wilson(len(a.cart_users), n_users),
        "conversion_rate": wilson(len(buyers), n_users),
        "revenue_per_user": mean_ci([a.revenue.get(u, 0.0) for u in a.users]),
        "aov": mean_ci(list(a.orders.values())),
        "repurchase_rate": wilson(sum(1 for u in buyers if len(a.order_days[u]) >= 2), len(buyers)),
        "retention": wilson(sum(1 for d in a.user_days.values() if len(d) >= 2), n_users),
    }
    return KpiRow(
        label=label,
        users=n_users,
        impressions=a.impressions,
        clicks=a.clicks,
        add_to_carts=a.add_to_carts,
        purchases=a.purchases,
        orders=len(a.orders),
        revenue=sum(a.revenue.values()),
        metrics=metrics,
    )


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


def build_report(
    events: Iterable[Event],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    experiment: Experiment | None = None,
    requests: RequestLog | None = None,
    catalog: Catalog | None = None,
    primary_metric: MetricName = "ctr",
    alpha: float = 0.05,
) -> KpiReport:
    """Compute the KPI report (see the module doc for definitions)."""
    if start is not None and end is not None and end <= start:
        raise ReportError("end must be after start")
    if primary_metric not in METRICS:
        raise ReportError(f"metric: unknown {primary_metric!r}; choose one of {', '.join(METRICS)}")
    if experiment is not None:
        start = max(filter(None, [start, experiment.started_at]), default=None)
        end = min(filter(None, [end, experiment.stopped_at]), default=None)
    chosen = [
        e
        for e in events
        if (start is None or e.timestamp >= start) and (end is None or e.timestamp < end)
    ]
    served = (
        requests.lookup(e.context.request_id for e in chosen if e.context.request_id)
        if requests
        else {}
    )

    def revenue(e: Event) -> float:
        if e.type not in ("purchase", "refund"):
            return 0.0
        if e.value is not None:
            return e.value
        item = catalog.get(e.item_id) if catalog is not None and e.item_id else None
        return item.price if item is not None else 0.0

    overall = _Acc()
    days: dict[date, _Acc] = defaultdict(_Acc)
    surfaces: dict[str, _Acc] = defaultdict(_Acc)
    for e in chosen:
        r = revenue(e)
        overall.add(e, r)
        days[e.timestamp.date()].add(e, r)
        surface = e.context.surface
        if surface is None and e.context.request_id in served:
            surface = served[e.context.request_id or ""].surface
        if surface is not None:
            surfaces[surface].add(e, r)

    by_variant: tuple[KpiRow, ...] = ()
    by_variant_day: dict[str, tuple[KpiRow, ...]] = {}
    comparisons: list[Comparison] = []
    how: dict[str, int] = {"context": 0, "request_id": 0, "user": 0}
    if experiment is not None:
        from recsys.experiments import assign_variant

        eid = experiment.experiment_id
        names = [v.name for v in experiment.variants]
        attributed: list[tuple[Event, str, str]] = []
        exposed: set[str] = {
            s.user_id for s in served.values() if s.experiment == eid and s.user_id
        }
        pending: list[Event] = []
        for e in chosen:
            if e.context.experiment == eid and e.context.variant in names:
                attributed.append((e, e.context.variant or "", "context"))
                exposed.add(e.user_id)
                continue
            s = served.get(e.context.request_id or "")
            if s is not None and s.experiment == eid and s.variant in names:
                attributed.append((e, s.variant or "", "request_id"))
                continue
            pending.append(e)
        for e in pending:
            if e.user_id in exposed:
                attributed.append((e, assign_variant(experiment, e.user_id).name, "user"))
        accs: dict[str, _Acc] = {n: _Acc() for n in names}
        vdays: dict[str, dict[date, _Acc]] = {n: defaultdict(_Acc) for n in names}
        for e, v, source in attributed:
            how[source] += 1
            r = revenue(e)
            accs[v].add(e, r)
            vdays[v][e.timestamp.date()].add(e, r)
        by_variant = tuple(_row(n, accs[n]) for n in names)
        by_variant_day = {
            n: tuple(_row(d.isoformat(), a) for d, a in sorted(vdays[n].items())) for n in names
        }
        control = next(r for r in by_variant if r.label == experiment.control)
        k = max(1, len(names) - 1)
        for row in by_variant:
            if row.label == experiment.control:
                continue
            for m in METRICS:
                comparisons.append(
                    compare(
                        m,
                        row.label,
                        control.label,
                        row.metrics[m],
                        control.metrics[m],
                        alpha=alpha / k,
                    )
                )

    return KpiReport(
        start=start,
        end=end,
        events=len(chosen),
        overall=_row("overall", overall),
        by_day=tuple(_row(d.isoformat(), a) for d, a in sorted(days.items())),
        by_surface=tuple(_row(s, a) for s, a in sorted(surfaces.items())),
        experiment=experiment.experiment_id if experiment is not None else None,
        control=experiment.control if experiment is not None else None,
        primary_metric=primary_metric,
        by_variant=by_variant,
        by_variant_day=by_variant_day,
        comparisons=tuple(comparisons),
        attribution=how if experiment is not None else {},
    )
