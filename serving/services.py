"""Use cases of the API, between the routes (parse, render) and the layers below.

Each takes the parts it needs, not the whole app state, so a route, the console, a rule
preview and a bench call the same code.
"""

from __future__ import annotations

from core.settings import Settings
from data.catalog import Catalog
from ranking.hooks import RulesHook
from ranking.pipeline import Pipeline
from ranking.search import SearchTuning, rank_search
from search.backend import SearchBackend
from search.query import SearchRequest
from serving.errors import Unavailable
from serving.render import reason_out
from serving.schemas import FacetValueOut, SearchHitOut, SearchOut


def search_backend(backend: SearchBackend | None) -> SearchBackend:
    """The search backend, or a 503 saying how to build the index."""
    if backend is None:
        raise Unavailable("search is not available: build the index with `shoprank index`")
    return backend


def run_search(
    req: SearchRequest,
    *,
    backend: SearchBackend | None,
    pipeline: Pipeline,
    rules: RulesHook,
    catalog: Catalog,
    settings: Settings,
    debug: bool,
    request_id: str,
) -> SearchOut:
    """One search, all stages (:func:`ranking.search.rank_search`), rendered for the API."""
    tuning = SearchTuning(
        personalization_weight=settings.search_personalization_weight,
        personalization_top_n=settings.search_personalization_top_n,
    )
    ranked = rank_search(
        req,
        backend=search_backend(backend),
        pipeline=pipeline,
        rules=rules,
        tuning=tuning,
        request_id=request_id,
    )
    out_hits: list[SearchHitOut] = []
    for it in ranked.page:
        h = ranked.hits.get(it.item_id)
        item = catalog.get(it.item_id)
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
    assignment, result, rewrite, text = (
        ranked.assignment,
        ranked.result,
        ranked.rewrite,
        ranked.text,
    )
    return SearchOut(
        request_id=request_id,
        query=req.text,
        rewritten_query=text if text != req.text else None,
        redirect=rewrite.redirect if rewrite is not None else None,
        total=result.total,
        page=req.page,
        size=req.size,
        personalized=ranked.personalized,
        backend=ranked.backend,
        took_ms=result.took_ms,
        experiment=assignment.experiment if assignment else None,
        variant=assignment.variant if assignment else None,
        hits=out_hits,
        facets={
            f: [FacetValueOut(**v.model_dump()) for v in values]
            for f, values in result.facets.items()
        },
    )
