"""The console's search pages: ``/console/search`` (search the catalog, or open a user's feed,
and see ranked results with reasons and facets) and ``/console/search-analytics`` (the report
of ``GET /v1/reports/search`` with inline SVG charts, ``analytics.search_service``)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from analytics.search_service import report_charts, search_report
from core.errors import ShopRankError, describe
from serving.merch import read_events_table
from serving.routes.console import ConsoleDep, CsrfDep, page
from serving.routes.search_reports import search_log

log = logging.getLogger(__name__)
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


@router.get("/search")
def search_page(
    services: ConsoleDep,
    csrf: CsrfDep,
    q: Annotated[str, Query(max_length=500)] = "",
    user_id: Annotated[str, Query(max_length=128)] = "",
    surface: Annotated[str, Query(pattern="^(search|feed)$")] = "search",
    brand: Annotated[str, Query(max_length=200)] = "",
    category: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    from search.query import SearchRequest, TermsFilter
    from serving.services import run_search

    error = ""
    hits: list[dict[str, Any]] = []
    facets: dict[str, list[dict[str, Any]]] = {}
    meta: dict[str, Any] = {}
    rid = "console-" + uuid.uuid4().hex[:12]
    try:
        if surface == "feed":
            ranked = services.pipeline.feed(user_id=user_id or None, request_id=rid, depth=40)
            meta = {
                "strategy": ranked.strategy,
                "experiment": ranked.assignment.experiment if ranked.assignment else None,
                "variant": ranked.assignment.variant if ranked.assignment else None,
                "total": len(ranked.items),
            }
            for s in ranked.items[:20]:
                item = services.catalog.get(s.item_id)
                if item is None:
                    continue
                hits.append(
                    {
                        "item_id": s.item_id,
                        "title": item.title,
                        "brand": item.brand,
                        "category": list(item.category),
                        "price": item.price,
                        "currency": item.currency,
                        "score": s.score,
                        "reasons": [r.as_dict() for r in s.reasons],
                        "breakdown": dict(s.breakdown),
                    }
                )
        elif q or brand or category:
            filters = []
            if brand:
                filters.append(TermsFilter(field="brand", values=(brand,)))
            if category:
                filters.append(TermsFilter(field="category_l1", values=(category,)))
            req = SearchRequest(
                text=q,
                user_id=user_id or None,
                filters=tuple(filters),
                size=20,
                facets=("category_l1", "brand", "price"),
            )
            out = run_search(
                req,
                backend=services.search,
                pipeline=services.pipeline,
                rules=services.rules,
                catalog=services.catalog,
                settings=services.settings,
                debug=True,
                request_id=rid,
            )
            d = out.model_dump()
            hits = d["hits"]
            facets = d["facets"]
            meta = {
                k: d.get(k)
                for k in (
                    "total",
                    "rewritten_query",
                    "redirect",
                    "personalized",
                    "backend",
                    "took_ms",
                    "experiment",
                    "variant",
                    "relaxation",
                    "suggestion",
                    "price_filter",
                )
            }
    except ShopRankError as exc:
        error = str(exc)
    except ValidationError as exc:
        error = describe(exc)
    users = sorted(services.profiles.ids())[:200] if hasattr(services.profiles, "ids") else []
    return page(
        "search.html",
        csrf=csrf,
        active="search",
        q=q,
        user_id=user_id,
        surface=surface,
        brand=brand,
        category=category,
        hits=hits,
        facets=facets,
        meta=meta,
        error=error,
        users=users,
        link=lambda **kw: (
            "/console/search?"
            + urlencode(
                {
                    k: v
                    for k, v in {
                        "q": q,
                        "user_id": user_id,
                        "surface": surface,
                        "brand": brand,
                        "category": category,
                        **kw,
                    }.items()
                    if v
                }
            )
        ),
    )
