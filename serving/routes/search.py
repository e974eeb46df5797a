"""``/v1/search`` (GET for simple calls, POST for filters and facets) and autocomplete.

Order of work: rules may rewrite or redirect the query → the backend answers (top hits from
rank 0, so they can be re-ranked) → personalization re-ranks the top N when a consenting
user is given → rules (pins, boosts, hides) → the page is cut. ``total`` and ``facets`` are
the backend's, unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Request, Response
from pydantic import Field

from data.models import CATEGORY_SEPARATOR
from recsys.candidates import CF_MODELS
from recsys.types import Reason, ScoredItem
from search.personalize import personalize
from search.query import MAX_RERANK_DEPTH, SearchRequest, SortMode, TermsFilter
from search.result import SearchHit
from serving.deps import StorefrontCtx
from serving.errors import Unavailable
from serving.params import (
    CategoryPath,
    Debug,
    OptionalUser,
    QueryModel,
    parse_category,
    query_openapi,
    read_query,
)
from serving.render import json_response, reason_out
from serving.schemas import (
    AutocompleteOut,
    FacetValueOut,
    RelaxationOut,
    SearchHitOut,
    SearchOut,
    SuggestionOut,
)
from serving.state import Services

if TYPE_CHECKING:
    from recsys.hooks import RulesHook
    from recsys.pipeline import Pipeline

router = APIRouter(prefix="/v1/search", tags=["search"])


class SearchIn(SearchRequest):
    """A search request (see ``search.query.SearchRequest``) plus ``debug``."""

    debug: bool = False


def _backend(services: Services):  # type: ignore[no-untyped-def]
    if services.search is None:
        raise Unavailable("search is not available: build the index with `shoprank index`")
    return services.search


def run_search(
    services: Services,
    req: SearchRequest,
    *,
    debug: bool,
    request_id: str,
    pipeline: Pipeline | None = None,
    rules: RulesHook | None = None,
) -> SearchOut:
    """One search, all stages. ``pipeline``/``rules`` replace the app's (rule previews run
    this same code with a draft rule in force and an experiment hook that records nothing)."""
    backend = _backend(services)
    live = pipeline is None  # a rule preview passes its own pipeline
    pipeline = pipeline or services.pipeline
    rules = rules or services.rules
    ctx, profile, assignment, models = pipeline.begin(
        "search", user_id=req.user_id, request_id=request_id, query=req.text
    )
    rewrite = rules.rewrite_query(req.text, ctx) if req.text else None
    text = rewrite.query if rewrite is not None else req.text
    s = services.settings
    weight = s.search_personalization_weight
    if assignment is not None and assignment.personalization_weight is not None:
        weight = assignment.personalization_weight
    personal = bool(
        req.user_id and profile.personalizable and weight > 0 and text and req.sort == "relevance"
    )
    want = req.page * req.size
    depth = max(s.search_personalization_top_n, want)
    rerank = depth <= MAX_RERANK_DEPTH
    backend_req = req.model_copy(update={"text": text, "rerank_depth": depth if rerank else None})
    result = backend.search(backend_req)
    hits: dict[str, SearchHit] = {h.item_id: h for h in result.hits}
    search_reason = Reason(source="search", detail=f"matches {text!r}" if text else "browse")
    scored: list[ScoredItem]
    if personal:
        cf_model = models.first(CF_MODELS)
        cf_scores: dict[str, float] = {}
        if cf_model is not None:
            try:
                cf_scores = cf_model.score_items(
                    [h.item_id for h in result.hits[: s.search_personalization_top_n]],
                    req.user_id if profile.user_factors else None,  # an erased id: history only
                    profile.recent_items[:10],
                )
            except (KeyError, ValueError, IndexError):
                cf_scores = {}
        reranked = personalize(
            result.hits, profile, weight=weight, top_n=s.search_personalization_top_n, cf_scores=cf_scores
        )
        preason = Reason(
            source="personalization",
            detail="re-ranked by your interests",
            model_version=cf_model.version if cf_model is not None and cf_scores else None,
        )
        scored = [
            ScoredItem(
                r.hit.item_id,
                r.score,
                (search_reason, preason) if r.affinity > 0 else (search_reason,),
                {"lexical": r.lexical, "affinity": r.affinity, "personalization_weight": weight},
            )
            for r in reranked
        ]
    else:
        scored = [ScoredItem(h.item_id, h.score, (search_reason,), {"lexical": h.score}) for h in result.hits]
    scored = rules.apply_rules(scored, ctx)
    if rerank:
        page = scored[req.page_slice()]
    else:
        page = scored
    out_hits: list[SearchHitOut] = []
    for it in page:
        h = hits.get(it.item_id)
        item = services.catalog.get(it.item_id)
        if h is None and item is None:
            continue
        title = h.title if h is not None else item.title  # type: ignore[union-attr]
        out_hits.append(
            SearchHitOut(
                item_id=it.item_id,
                score=round(it.score, 6),
                lexical_score=h.score if h is not None else 0.0,
                title=title,
                highlighted_title=h.highlighted_title if h is not None else title,
                brand=h.brand if h is not None else item.brand,  # type: ignore[union-attr]
                category=list(h.category if h is not None else item.category),  # type: ignore[union-attr]
                price=h.price if h is not None else item.price,  # type: ignore[union-attr]
                currency=h.currency if h is not None else item.currency,  # type: ignore[union-attr]
                in_stock=(h.stock if h is not None else item.stock) > 0,  # type: ignore[union-attr]
                reasons=[reason_out(r) for r in it.reasons],
                breakdown={k: round(v, 6) for k, v in it.breakdown.items()} if debug else None,
            )
        )
    relax = result.relaxation
    search_log = services.extras.get("search_log") if live else None
    if search_log is not None and req.text:  # live searches only, not rule previews
        search_log.record(  # type: ignore[attr-defined]
            request_id=request_id, at=datetime.now(UTC), user_id=req.user_id, query=req.text,
            total=result.total, relaxed=relax is not None, hit_ids=[h.item_id for h in out_hits],
        )
    return SearchOut(
        request_id=request_id,
        query=req.text,
        relaxed=relax is not None,
        relaxation=RelaxationOut(**relax.model_dump()) if relax is not None else None,
        suggestion=result.suggestion,
        price_filter=result.price_filter,
        rewritten_query=text if text != req.text else None,
        redirect=rewrite.redirect if rewrite is not None else None,
        total=result.total,
        page=req.page,
        size=req.size,
        personalized=personal,
        backend=result.backend or backend.name,
        took_ms=result.took_ms,
        experiment=assignment.experiment if assignment else None,
        variant=assignment.variant if assignment else None,
        hits=out_hits,
        facets={
            f: [FacetValueOut(**v.model_dump()) for v in values] for f, values in result.facets.items()
        },
    )


@router.post(
    "",
    response_model=SearchOut,
    response_model_exclude_none=True,
    summary="Search with filters, facets and sorting",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "text": "連衣裙",
                        "filters": [{"field": "price", "lte": 1000}],
                        "facets": ["brand", "price"],
                        "user_id": "u1",
                    }
                }
            }
        }
    },
)
def search_post(body: SearchIn, ctx: StorefrontCtx) -> Response:
    req = SearchRequest.model_validate(body.model_dump(exclude={"debug"}, exclude_none=True))
    return json_response(run_search(ctx.services, req, debug=body.debug, request_id=ctx.request_id))


class SearchQuery(QueryModel):
    q: Annotated[str, Field(max_length=500, description="Free text (Chinese or English).")] = ""
    user_id: OptionalUser = None
    category: CategoryPath = None
    brand: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    sort: SortMode = "relevance"
    page: Annotated[int, Field(ge=1, le=100)] = 1
    size: Annotated[int, Field(ge=1, le=100)] = 10
    debug: Debug = False


@router.get("", response_model=SearchOut, response_model_exclude_none=True, summary="Simple search",
            openapi_extra=query_openapi(SearchQuery))
def search_get(request: Request, ctx: StorefrontCtx) -> Response:
    p = read_query(SearchQuery, request)
    filters = []
    cat = parse_category(p.category)
    if cat:
        filters.append(TermsFilter(field="category", values=(CATEGORY_SEPARATOR.join(cat),)))
    if p.brand:
        filters.append(TermsFilter(field="brand", values=(p.brand,)))
    req = SearchRequest(
        text=p.q, user_id=p.user_id, filters=tuple(filters), sort=p.sort, page=p.page, size=p.size,
        facets=("category_l1", "brand", "price"),
    )
    return json_response(run_search(ctx.services, req, debug=p.debug, request_id=ctx.request_id))


class AutocompleteQuery(QueryModel):
    q: Annotated[str, Field(min_length=1, max_length=100, description="What the shopper typed so far.")]
    size: Annotated[int, Field(ge=1, le=20)] = 8


@router.get("/autocomplete", response_model=AutocompleteOut, summary="Autocomplete",
            openapi_extra=query_openapi(AutocompleteQuery))
def autocomplete(request: Request, ctx: StorefrontCtx) -> AutocompleteOut:
    p = read_query(AutocompleteQuery, request)
    backend = _backend(ctx.services)
    return AutocompleteOut(
        request_id=ctx.request_id,
        prefix=p.q,
        suggestions=[SuggestionOut(text=s.text, kind=s.kind, count=s.count) for s in backend.suggest(p.q, p.size)],
    )
