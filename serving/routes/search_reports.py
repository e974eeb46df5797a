"""``GET /v1/reports/search``: search analytics for merchandisers (admin key); definitions
in ``analytics.search_report``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from serving.deps import AdminDep, ReportsDep
from serving.errors import DocumentedRoute
from serving.params import IsoTime

router = APIRouter(
    prefix="/v1/reports", tags=["reports"], dependencies=[AdminDep], route_class=DocumentedRoute
)


@router.get("/search", summary="Top queries, queries without results, low click-through, per day")
def search_analytics(
    reports: ReportsDep,
    start: Annotated[
        IsoTime | None, Query(description="ISO time, inclusive (UTC when no zone).")
    ] = None,
    end: Annotated[IsoTime | None, Query(description="ISO time, exclusive.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Rows per list.")] = 20,
    min_searches: Annotated[
        int,
        Query(ge=1, le=10_000, description="Searches a query needs to be listed under low CTR."),
    ] = 5,
) -> dict[str, Any]:
    report = reports.searches(start, end, limit=limit, min_searches=min_searches)
    return report.as_dict()
