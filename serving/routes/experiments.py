"""``/v1/experiments``: A/B experiments — create, start, stop, results (admin key).

Assignment is deterministic by hashing (experiment id, user id); responses of the surfaces an
experiment runs on carry ``experiment`` and ``variant``; events that echo the response's
``request_id`` are attributed to them (see ``merch.experiments``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from analytics.reports import METRICS, MetricName, build_report
from merch.experiments import ExperimentSpec, experiment_as_dict
from serving.deps import AdminDep, ServicesDep
from serving.errors import BadRequest, DocumentedRoute, error_responses
from serving.merch import merch, read_events_table
from serving.state import Services

router = APIRouter(
    prefix="/v1/experiments",
    tags=["experiments"],
    dependencies=[AdminDep],
    route_class=DocumentedRoute,
)

EXAMPLE = {
    "id": "feed-blend",
    "name": "More for-you in the feed",
    "surfaces": ["feed"],
    "variants": [
        {"name": "control", "share": 50},
        {
            "name": "for-you-heavy",
            "share": 50,
            "overrides": {"blend_weights": {"for_you": 1.0, "trending": 0.1, "new_arrivals": 0.05}},
        },
    ],
}


@router.get("", summary="List experiments")
def list_experiments(services: ServicesDep) -> dict[str, list[dict[str, Any]]]:
    return {"experiments": [experiment_as_dict(e) for e in merch(services).experiments.list()]}


@router.post(
    "",
    status_code=201,
    summary="Create an experiment (as a draft)",
    responses=error_responses(409),  # the id is taken (shared stores)
    openapi_extra={"requestBody": {"content": {"application/json": {"example": EXAMPLE}}}},
)
def create_experiment(
    body: ExperimentSpec, services: ServicesDep, response: Response
) -> dict[str, Any]:
    e = merch(services).experiments.create(body)
    response.headers["Location"] = f"/v1/experiments/{e.experiment_id}"
    return experiment_as_dict(e)


@router.get("/{experiment_id}", summary="Get an experiment")
def get_experiment(experiment_id: str, services: ServicesDep) -> dict[str, Any]:
    return experiment_as_dict(merch(services).experiments.get(experiment_id))


@router.put(
    "/{experiment_id}", summary="Change a draft, or the shares/overrides of a running experiment"
)
def put_experiment(
    experiment_id: str, body: ExperimentSpec, services: ServicesDep
) -> dict[str, Any]:
    return experiment_as_dict(merch(services).experiments.update(experiment_id, body))


@router.post("/{experiment_id}/start", summary="Start assigning users")
def start_experiment(experiment_id: str, services: ServicesDep) -> dict[str, Any]:
    return experiment_as_dict(merch(services).experiments.start(experiment_id))


@router.post(
    "/{experiment_id}/stop", summary="Stop the experiment (everyone gets the default again)"
)
def stop_experiment(experiment_id: str, services: ServicesDep) -> dict[str, Any]:
    return experiment_as_dict(merch(services).experiments.stop(experiment_id))


@router.delete("/{experiment_id}", status_code=204, summary="Delete a draft or stopped experiment")
def delete_experiment(experiment_id: str, services: ServicesDep) -> Response:
    merch(services).experiments.delete(experiment_id)
    return Response(status_code=204)


def experiment_report(services: Services, experiment_id: str, metric: str = "ctr"):  # type: ignore[no-untyped-def]
    if metric not in METRICS:
        raise BadRequest(
            f"metric: unknown {metric!r}; choose one of {', '.join(METRICS)}", field="metric"
        )
    m = merch(services)
    e = m.experiments.get(experiment_id)
    m.requests.flush()
    return build_report(
        read_events_table(services, e.started_at, e.stopped_at),
        experiment=e,
        requests=m.requests,
        catalog=services.catalog,
        primary_metric=metric,
    )  # type: ignore[arg-type]


@router.get(
    "/{experiment_id}/results", summary="KPIs per variant with intervals, lift and significance"
)
def results(
    experiment_id: str,
    services: ServicesDep,
    metric: Annotated[MetricName, Query(description="Primary metric for the verdict.")] = "ctr",
) -> dict[str, Any]:
    report = experiment_report(services, experiment_id, metric)
    out = report.as_dict()
    out["experiment_detail"] = experiment_as_dict(merch(services).experiments.get(experiment_id))
    out["generated_at"] = datetime.now(UTC).isoformat()
    return out
