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

from analytics.search_service import report_charts
from core.errors import ShopRankError, describe
from data.catalog import Catalog
from ranking.pipeline import Pipeline
from search.query import SearchRequest, TermsFilter
from serving.deps import CatalogDep, PipelineDep, ProductSearchDep, ProfilesDep, ReportsDep
from serving.routes.console import ConsoleDep, CsrfDep, page

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[ConsoleDep])

SEARCH_META = ("total", "rewritten_query", "redirect", "personalized", "backend", "took_ms",
               "experiment", "variant", "relaxation", "suggestion", "price_filter")
"""What the search page shows above the hits."""


@router.get("/search-analytics")
def search_analytics_page(
    reports: ReportsDep,
    csrf: CsrfDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    min_searches: Annotated[int, Query(ge=1, le=10_000)] = 3,
) -> HTMLResponse:
    start = datetime.now(UTC) - timedelta(days=days)
    report = reports.searches(start, None, limit=20, min_searches=min_searches)
    return page(
        "search_analytics.html",
        csrf=csrf,
        active="search-analytics",
        days=days,
        report=report,
        charts=report_charts(report),
    )


def _feed(
    pipeline: Pipeline, catalog: Catalog, user_id: str | None, request_id: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A user's feed as the search page lists it: the top 20 with scores, reasons and score
    breakdowns, and how it was ranked."""
    ranked = pipeline.feed(user_id=user_id, request_id=request_id, depth=40)
    meta = {
        "strategy": ranked.strategy,
        "experiment": ranked.assignment.experiment if ranked.assignment else None,
        "variant": ranked.assignment.variant if ranked.assignment else None,
        "total": len(ranked.items),
    }
    hits = []
    for s in ranked.items[:20]:
        item = catalog.get(s.item_id)
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
    return hits, meta


def _search_request(q: str, user_id: str, brand: str, category: str) -> SearchRequest:
    filters = []
    if brand:
        filters.append(TermsFilter(field="brand", values=(brand,)))
    if category:
        filters.append(TermsFilter(field="category_l1", values=(category,)))
    return SearchRequest(
        text=q,
        user_id=user_id or None,
        filters=tuple(filters),
        size=20,
        facets=("category_l1", "brand", "price"),
    )


@router.get("/search")
def search_page(
    search: ProductSearchDep,
    pipeline: PipelineDep,
    catalog: CatalogDep,
    profiles: ProfilesDep,
    csrf: CsrfDep,
    q: Annotated[str, Query(max_length=500)] = "",
    user_id: Annotated[str, Query(max_length=128)] = "",
    surface: Annotated[str, Query(pattern="^(search|feed)$")] = "search",
    brand: Annotated[str, Query(max_length=200)] = "",
    category: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    error = ""
    hits: list[dict[str, Any]] = []
    facets: dict[str, list[dict[str, Any]]] = {}
    meta: dict[str, Any] = {}
    rid = "console-" + uuid.uuid4().hex[:12]
    try:
        if surface == "feed":
            hits, meta = _feed(pipeline, catalog, user_id or None, rid)
        elif q or brand or category:
            req = _search_request(q, user_id, brand, category)
            d = search.unlogged().search(req, debug=True, request_id=rid).model_dump()
            hits = d["hits"]
            facets = d["facets"]
            meta = {k: d.get(k) for k in SEARCH_META}
    except ShopRankError as exc:
        error = str(exc)
    except ValidationError as exc:
        error = describe(exc)
    users = sorted(profiles.ids())[:200]
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
