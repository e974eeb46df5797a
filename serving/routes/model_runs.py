"""Retrain history (admin): the runs of `shoprank retrain` / `shoprank scheduler`, and the
chart of each model's metric per version over time."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from analytics.model_history import history_chart, history_points, render
from serving.deps import AdminDep, RequestIdDep, SettingsDep
from serving.errors import DocumentedRoute
from training.retrain import read_runs

router = APIRouter(
    prefix="/v1/models", tags=["models"], dependencies=[AdminDep], route_class=DocumentedRoute
)

MetricQ = Annotated[str, Query(pattern=r"^(ndcg|recall|precision|map|hit_rate)@[0-9]{1,3}$",
                               description="A held-out metric such as ndcg@10.")]


class RunModelOut(BaseModel):
    name: str
    algorithm: str
    decision: Literal["promoted", "kept", "skipped"]
    reason: str
    serving_version: str | None = None
    new_version: str | None = None
    candidate_metric: float | None = None
    serving_metric: float | None = None


class RunOut(BaseModel):
    run_id: str
    trigger: Literal["manual", "schedule"]
    started_at: str
    finished_at: str
    status: Literal["ok", "failed"]
    metric: str
    tolerance: float
    protocol: dict[str, str | float | int]
    held_out: dict[str, str | int | list[str]]
    models: list[RunModelOut]
    error: str | None = None


class RunsOut(BaseModel):
    request_id: str
    runs: list[RunOut]


@router.get("/runs", response_model=RunsOut, summary="Retrain runs, newest first")
def list_runs(settings: SettingsDep, request_id: RequestIdDep,
              limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> RunsOut:
    runs = read_runs(settings.models_dir, limit=limit)
    return RunsOut(request_id=request_id, runs=[RunOut.model_validate(r) for r in runs])


@router.get("/history.png", summary="Metric per model version over time (PNG)",
            response_class=Response, responses={200: {"content": {"image/png": {}}}})
def history_png(settings: SettingsDep, metric: MetricQ = "ndcg@10") -> Response:
    fig = history_chart(history_points(settings.models_dir, metric), metric)
    return Response(render(fig, "png"), media_type="image/png")
