"""The console's first page (``/console/overview``): today's and the last 30 days' KPIs
(impressions, CTR, conversion, revenue), top and failing search queries (both from
``serving.usecases.reports``), running experiments and the served model versions with their
offline metrics."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from core.errors import ShopRankError
from serving.deps import ModelAdminDep, ReportsDep
from serving.routes.console import ConsoleDep, CsrfDep, page
from serving.usecases.models import ModelAdmin

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[ConsoleDep])


def _models(models: ModelAdmin) -> list[dict[str, Any]]:
    """The served version of each model and its offline metrics (from the registry)."""
    rows = {(r["name"], r["version"]): r for r in models.registry.list()}
    return [
        {
            "name": name,
            "version": version,
            "metrics": (rows.get((name, version)) or {}).get("metrics") or {},
        }
        for name, version in sorted(models.versions.items())
    ]


@router.get("/overview")
def overview_page(reports: ReportsDep, models: ModelAdminDep, csrf: CsrfDep) -> HTMLResponse:
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    errors: list[str] = []
    kpis: dict[str, dict[str, Any]] = {}
    for label, start in (("today", today), ("last 30 days", now - timedelta(days=30))):
        try:
            kpis[label] = reports.headline(start, now + timedelta(seconds=1))
        except ShopRankError as exc:
            errors.append(f"KPIs {label}: {exc}")
    search = reports.searches(now - timedelta(days=30), None, limit=5, min_searches=3)
    running = [e for e in reports.experiments.list() if e.status == "running"]
    try:
        served = _models(models)
    except (ShopRankError, OSError) as exc:
        errors.append(f"models: {exc}")
        served = []
    return page(
        "overview.html",
        csrf=csrf,
        active="overview",
        kpis=kpis,
        search=search,
        experiments=running,
        models=served,
        errors=errors,
    )
