"""Shopper segments (admin): the latest `shoprank segments` run — sizes per lifecycle stage,
moves since the run before, KPIs per stage — as JSON, a PNG chart, and a console page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from analytics.segment_runs import chart_bytes, read_history, segments_chart
from analytics.segments import STAGES
from serving.deps import AdminDep, RequestIdDep, SettingsDep
from serving.errors import DocumentedRoute
from serving.routes.console import ConsoleDep, CsrfDep, page

router = APIRouter(route_class=DocumentedRoute, tags=["segments"])


class SegmentRunOut(BaseModel):
    computed_at: str
    as_of: str
    thresholds: dict[str, float]
    sizes: dict[str, int]
    moves: dict[str, dict[str, int]]
    kpis: dict[str, dict[str, float | int | None]]
    published: int


class SegmentsOut(BaseModel):
    request_id: str
    stages: list[str]
    runs: list[SegmentRunOut]
    """Oldest first; the last is the one user attributes hold."""


@router.get("/v1/segments", response_model=SegmentsOut, dependencies=[AdminDep],
            summary="Segment runs: sizes per stage, moves and KPIs per stage")
def list_segments(settings: SettingsDep, request_id: RequestIdDep,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 30) -> SegmentsOut:
    runs = read_history(settings.state_dir)[-limit:]
    return SegmentsOut(request_id=request_id, stages=list(STAGES),
                       runs=[SegmentRunOut.model_validate(r) for r in runs])


@router.get("/v1/segments.png", dependencies=[AdminDep], response_class=Response,
            responses={200: {"content": {"image/png": {}}}},
            summary="Segment sizes (latest run) and per run over time, as a PNG")
def segments_png(settings: SettingsDep) -> Response:
    fig = segments_chart(read_history(settings.state_dir))
    return Response(chart_bytes(fig, "png"), media_type="image/png")


@router.get("/console/segments", include_in_schema=False, dependencies=[ConsoleDep])
def segments_page(settings: SettingsDep, csrf: CsrfDep) -> HTMLResponse:
    history = read_history(settings.state_dir)
    svg = ""
    if history:
        text = chart_bytes(segments_chart(history), "svg").decode("utf-8")
        svg = text[text.index("<svg"):]
    return page("segments.html", csrf=csrf, active="segments", stages=STAGES,
                last=history[-1] if history else None, runs=len(history), chart=svg)
