"""``GET /v1/reports/search``: search analytics for merchandisers (admin key); definitions
in ``analytics.search_report``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from analytics.search_log import SearchLog
from analytics.search_service import search_report
from serving.deps import AdminDep, ServicesDep
from serving.errors import BadRequest, DocumentedRoute, Unavailable
from serving.merch import merch, read_events_table
from serving.params import IsoTime
from serving.state import Services

router = APIRouter(
    prefix="/v1/reports", tags=["reports"], dependencies=[AdminDep], route_class=DocumentedRoute
)


def search_log(services: Services) -> SearchLog:
    merch(services)  # opens the merchandising stores, the search log among them
    got = services.extras.get("search_log")
    if not isinstance(got, SearchLog):
        raise Unavailable("the search log is not available")
    return got


@router.get("/search", summary="Top queries, queries without results, low click-through, per day")
def search_analytics(
    services: ServicesDep,
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
    if (
        start is not None
        and end is not None
        and end.replace(tzinfo=None) <= start.replace(tzinfo=None)
    ):
        raise BadRequest("end: must be after start", field="end")
    report = search_report(
        search_log(services),
        lambda a, b: read_events_table(services, a, b),
        start=start,
        end=end,
        limit=limit,
        min_searches=min_searches,
    )
    return report.as_dict()
