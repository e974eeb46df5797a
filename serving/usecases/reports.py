"""KPI reports (overall, per day, per surface, per variant of an experiment) and search
analytics, over the event log, the request log, the catalog and the search log: what
``/v1/reports``, ``/v1/experiments/{id}/results`` and the console's overview, experiment and
search-analytics pages show. Definitions are in ``analytics.reports`` and
``analytics.search_report``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics.reports import KpiReport, build_report
from analytics.search_log import SearchLog
from analytics.search_report import SearchReport
from analytics.search_service import EventsReader, search_report
from analytics.statistics import METRICS, MetricName
from data.catalog import Catalog
from merch.experiments import Experiment, ExperimentService
from merch.request_log import RequestLog
from serving.errors import BadRequest, Unavailable

HEADLINE_METRICS = ("ctr", "conversion_rate")
"""The rates the console's overview shows beside the counts."""


def _utc(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


@dataclass(frozen=True, slots=True)
class Reports:
    catalog: Catalog
    experiments: ExperimentService
    requests: RequestLog
    events: EventsReader
    """The durable log's events in a time window, as an Arrow table."""
    search_log: SearchLog | None

    def kpis(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        experiment: str | None = None,
        metric: MetricName = "ctr",
    ) -> KpiReport:
        """KPIs of ``[start, end)`` (UTC when no zone), per variant when ``experiment`` is
        given (404 when there is no such experiment)."""
        start, end = _utc(start), _utc(end)
        if start is not None and end is not None and end <= start:
            raise BadRequest("end: must be after start", field="end")
        exp = self.experiments.get(experiment) if experiment else None
        return self._report(start, end, experiment=exp, metric=metric)

    def _report(
        self,
        start: datetime | None,
        end: datetime | None,
        *,
        experiment: Experiment | None = None,
        metric: MetricName = "ctr",
        window: bool = True,
    ) -> KpiReport:
        """``window``: cut the events to ``[start, end)``; else count every event the reader
        returns for it (whole day files: an experiment's report)."""
        self.requests.flush()  # the rows still buffered count too
        return build_report(
            self.events(start, end),
            start=start if window else None,
            end=end if window else None,
            experiment=experiment,
            requests=self.requests,
            catalog=self.catalog,
            primary_metric=metric,
        )

    def experiment(self, experiment_id: str, metric: str = "ctr") -> KpiReport:
        """An experiment's KPIs per variant over its run, ``metric`` deciding the verdict."""
        if metric not in METRICS:
            raise BadRequest(
                f"metric: unknown {metric!r}; choose one of {', '.join(METRICS)}", field="metric"
            )
        e = self.experiments.get(experiment_id)
        name: MetricName = metric  # type: ignore[assignment]  # checked against METRICS above
        return self._report(e.started_at, e.stopped_at, experiment=e, metric=name, window=False)

    def headline(self, start: datetime, end: datetime) -> dict[str, Any]:
        """Impressions, clicks, purchases, revenue and the headline rates of a window."""
        row = self._report(start, end).overall
        return {
            "impressions": row.impressions,
            "clicks": row.clicks,
            "purchases": row.purchases,
            "revenue": row.revenue,
            **{k: row.metrics[k].value if k in row.metrics else None for k in HEADLINE_METRICS},
        }

    def searches(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        limit: int = 20,
        min_searches: int = 5,
    ) -> SearchReport:
        """Top queries, queries without results, low click-through and searches per day in
        ``[start, end)`` (503 when the search log is not available)."""
        if (
            start is not None
            and end is not None
            and end.replace(tzinfo=None) <= start.replace(tzinfo=None)
        ):
            raise BadRequest("end: must be after start", field="end")
        if self.search_log is None:
            raise Unavailable("the search log is not available")
        return search_report(
            self.search_log, self.events, start=start, end=end, limit=limit,
            min_searches=min_searches,
        )
