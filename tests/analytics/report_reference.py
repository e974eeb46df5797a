"""The KPI report computed event by event, in plain Python: an oracle for the columnar
``analytics.reports.build_report`` (tests compare both on random traffic) and the baseline of
``bench/report.py``. Not used by the service."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from analytics.reports import KpiReport, KpiRow
from analytics.statistics import METRICS, Comparison, MetricName, compare, mean_ci, wilson
from data.models import Event
from merch.errors import ReportError

if TYPE_CHECKING:
    from data.catalog import Catalog
    from merch.experiments import Experiment
    from merch.request_log import RequestLog


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


def reference_report(
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
    """The KPI report computed event by event."""
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
        from merch.experiments import assign_variant

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
