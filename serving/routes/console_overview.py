"""The console's first page (``/console/overview``): today's and the last 30 days' KPIs
(impressions, CTR, conversion, revenue: ``recsys.reports``), top and failing search queries
(``analytics.search_report``), running experiments and the served model versions with their
offline metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from analytics.reports import build_report
from analytics.search_service import search_report
from core.errors import ShopRankError
from models.registry import Registry
from serving.merch import merch, read_events_table
from serving.routes.console import ConsoleDep, CsrfDep, page
from serving.routes.search_reports import search_log
from serving.state import Services

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)

HEADLINE_METRICS = ("ctr", "conversion_rate")


def _kpis(services: Services, start: datetime, end: datetime) -> dict[str, Any]:
    m = merch(services)
    m.requests.flush()
    report = build_report(
        read_events_table(services, start, end),
        start=start,
        end=end,
        requests=m.requests,
        catalog=services.catalog,
    )
    row = report.overall
    return {
        "impressions": row.impressions,
        "clicks": row.clicks,
        "purchases": row.purchases,
        "revenue": row.revenue,
        **{k: row.metrics[k].value if k in row.metrics else None for k in HEADLINE_METRICS},
    }


def _models(services: Services) -> list[dict[str, Any]]:
    """The served version of each model and its offline metrics (from the registry)."""
    reg = Registry(services.settings.models_dir)
    rows = {(r["name"], r["version"]): r for r in reg.list()}
    return [
        {
            "name": name,
            "version": version,
            "metrics": (rows.get((name, version)) or {}).get("metrics") or {},
        }
        for name, version in sorted(services.models.versions.items())
    ]


@router.get("/overview")
def overview_page(services: ConsoleDep, csrf: CsrfDep) -> HTMLResponse:
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    errors: list[str] = []
    kpis: dict[str, dict[str, Any]] = {}
    for label, start in (("today", today), ("last 30 days", now - timedelta(days=30))):
        try:
            kpis[label] = _kpis(services, start, now + timedelta(seconds=1))
        except ShopRankError as exc:
            errors.append(f"KPIs {label}: {exc}")
    report = search_report(
        search_log(services),
        lambda a, b: read_events_table(services, a, b),
        start=now - timedelta(days=30),
        end=None,
        limit=5,
        min_searches=3,
    )
    running = [e for e in merch(services).experiments.list() if e.status == "running"]
    try:
        models = _models(services)
    except (ShopRankError, OSError) as exc:
        errors.append(f"models: {exc}")
        models = []
    return page(
        "overview.html",
        csrf=csrf,
        active="overview",
        kpis=kpis,
        search=report,
        experiments=running,
        models=models,
        errors=errors,
    )
