"""``/v1/reports``: KPI reports from the event log, as JSON or a PNG chart (admin key).

Definitions of every KPI are in ``analytics.reports``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from analytics.charts import overview_chart, render, variant_chart
from analytics.statistics import MetricName
from serving.deps import AdminDep, ReportsDep
from serving.errors import DocumentedRoute, error_responses
from serving.params import IsoTime

router = APIRouter(
    prefix="/v1/reports", tags=["reports"], dependencies=[AdminDep], route_class=DocumentedRoute
)

StartQ = Annotated[IsoTime | None, Query(description="ISO time, inclusive (UTC when no zone).")]
EndQ = Annotated[IsoTime | None, Query(description="ISO time, exclusive.")]
ExperimentQ = Annotated[str | None, Query(max_length=64)]


@router.get(
    "/kpis",
    summary="KPIs overall, per day, per surface (and per variant of an experiment)",
    responses=error_responses(404),  # no such experiment
)
def kpis(
    reports: ReportsDep,
    start: StartQ = None,
    end: EndQ = None,
    experiment: ExperimentQ = None,
    metric: MetricName = "ctr",
) -> dict[str, Any]:
    return reports.kpis(start, end, experiment=experiment, metric=metric).as_dict()


@router.get(
    "/kpis.png",
    summary="The KPI chart as a PNG",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(404)},
)
def kpis_png(
    reports: ReportsDep,
    start: StartQ = None,
    end: EndQ = None,
    experiment: ExperimentQ = None,
    metric: MetricName = "ctr",
) -> Response:
    report = reports.kpis(start, end, experiment=experiment, metric=metric)
    fig = variant_chart(report, metric) if experiment else overview_chart(report)
    return Response(render(fig, "png"), media_type="image/png")
