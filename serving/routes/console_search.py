"""The console's search analytics page (``/console/search-analytics``): the report of
``GET /v1/reports/search`` with inline SVG charts (``analytics.search_service``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from analytics.search_service import report_charts, search_report
from serving.merch import read_events_table
from serving.routes.console import ConsoleDep, CsrfDep, page
from serving.routes.search_reports import search_log

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/search-analytics")
def search_analytics_page(
    services: ConsoleDep,
    csrf: CsrfDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    min_searches: Annotated[int, Query(ge=1, le=10_000)] = 3,
) -> HTMLResponse:
    start = datetime.now(UTC) - timedelta(days=days)
    report = search_report(
        search_log(services),
        lambda a, b: read_events_table(services, a, b),
        start=start,
        end=None,
        limit=20,
        min_searches=min_searches,
    )
    return page(
        "search_analytics.html",
        csrf=csrf,
        active="search-analytics",
        days=days,
        report=report,
        charts=report_charts(report),
    )
