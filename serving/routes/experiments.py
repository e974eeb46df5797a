"""``/v1/experiments``: A/B experiments — create, start, stop, results (admin key).

Assignment is deterministic by hashing (experiment id, user id); responses of the surfaces an
experiment runs on carry ``experiment`` and ``variant``; events that echo the response's
``request_id`` are attributed to them (see ``merch.experiments``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from analytics.statistics import MetricName
from merch.experiments import ExperimentSpec, experiment_as_dict
from serving.deps import AdminDep, ExperimentsDep, ReportsDep
from serving.errors import DocumentedRoute, error_responses

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
def list_experiments(experiments: ExperimentsDep) -> dict[str, list[dict[str, Any]]]:
    return {"experiments": [experiment_as_dict(e) for e in experiments.list()]}


@router.post(
    "",
    status_code=201,
    summary="Create an experiment (as a draft)",
    responses=error_responses(409),  # the id is taken (shared stores)
    openapi_extra={"requestBody": {"content": {"application/json": {"example": EXAMPLE}}}},
)
def create_experiment(
    body: ExperimentSpec, experiments: ExperimentsDep, response: Response
) -> dict[str, Any]:
    e = experiments.create(body)
    response.headers["Location"] = f"/v1/experiments/{e.experiment_id}"
    return experiment_as_dict(e)


@router.get("/{experiment_id}", summary="Get an experiment")
def get_experiment(experiment_id: str, experiments: ExperimentsDep) -> dict[str, Any]:
    return experiment_as_dict(experiments.get(experiment_id))


@router.put(
    "/{experiment_id}", summary="Change a draft, or the shares/overrides of a running experiment"
)
def put_experiment(
    experiment_id: str, body: ExperimentSpec, experiments: ExperimentsDep
) -> dict[str, Any]:
    return experiment_as_dict(experiments.update(experiment_id, body))


@router.post("/{experiment_id}/start", summary="Start assigning users")
def start_experiment(experiment_id: str, experiments: ExperimentsDep) -> dict[str, Any]:
    return experiment_as_dict(experiments.start(experiment_id))


@router.post(
    "/{experiment_id}/stop", summary="Stop the experiment (everyone gets the default again)"
)
def stop_experiment(experiment_id: str, experiments: ExperimentsDep) -> dict[str, Any]:
    return experiment_as_dict(experiments.stop(experiment_id))


@router.delete("/{experiment_id}", status_code=204, summary="Delete a draft or stopped experiment")
def delete_experiment(experiment_id: str, experiments: ExperimentsDep) -> Response:
    experiments.delete(experiment_id)
    return Response(status_code=204)


@router.get(
    "/{experiment_id}/results", summary="KPIs per variant with intervals, lift and significance"
)
def results(
    experiment_id: str,
    reports: ReportsDep,
    metric: Annotated[MetricName, Query(description="Primary metric for the verdict.")] = "ctr",
) -> dict[str, Any]:
    out = reports.experiment(experiment_id, metric).as_dict()
    out["experiment_detail"] = experiment_as_dict(reports.experiments.get(experiment_id))
    out["generated_at"] = datetime.now(UTC).isoformat()
    return out
