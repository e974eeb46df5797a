"""``/v1/reports``: KPI reports from the event log, as JSON or a PNG chart (admin key).

Definitions of every KPI are in ``analytics.reports``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from analytics.reports import MetricName, build_report
from serving.deps import AdminDep, ServicesDep
from serving.errors import BadRequest, DocumentedRoute, error_responses
from serving.merch import merch, read_events_table
from serving.params import IsoTime

router = APIRouter(
    prefix="/v1/reports", tags=["reports"], dependencies=[AdminDep], route_class=DocumentedRoute
)

StartQ = Annotated[IsoTime | None, Query(description="ISO time, inclusive (UTC when no zone).")]
EndQ = Annotated[IsoTime | None, Query(description="ISO time, exclusive.")]


def _report(services, start, end, experiment, metric):  # type: ignore[no-untyped-def]
    from datetime import UTC

    start = start.replace(tzinfo=UTC) if start is not None and start.tzinfo is None else start
    end = end.replace(tzinfo=UTC) if end is not None and end.tzinfo is None else end
    if start is not None and end is not None and end <= start:
        raise BadRequest("end: must be after start", field="end")
    m = merch(services)
    exp = m.experiments.get(experiment) if experiment else None
    m.requests.flush()
    return build_report(
        read_events_table(services, start, end),
        start=start,
        end=end,
        experiment=exp,
        requests=m.requests,
        catalog=services.catalog,
        primary_metric=metric,
    )


@router.get(
    "/kpis",
    summary="KPIs overall, per day, per surface (and per variant of an experiment)",
    responses=error_responses(404),  # no such experiment
)
def kpis(
    services: ServicesDep,
    start: StartQ = None,
    end: EndQ = None,
    experiment: Annotated[str | None, Query(max_length=64)] = None,
    metric: MetricName = "ctr",
) -> dict[str, Any]:
    return _report(services, start, end, experiment, metric).as_dict()


@router.get(
    "/kpis.png",
    summary="The KPI chart as a PNG",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, **error_responses(404)},
)
def kpis_png(
    services: ServicesDep,
    start: StartQ = None,
    end: EndQ = None,
    experiment: Annotated[str | None, Query(max_length=64)] = None,
    metric: MetricName = "ctr",
) -> Response:
    from analytics.charts import overview_chart, render, variant_chart

    report = _report(services, start, end, experiment, metric)
    fig = variant_chart(report, metric) if experiment else overview_chart(report)
    return Response(render(fig, "png"), media_type="image/png")
