"""The search pipeline: rules rewrite the query → the backend answers → personalization
re-ranks the top N for a consenting user → rules (pins, boosts, hides) → the page is cut.

The backend is asked for the top hits from rank 0 (``rerank_depth``) so they can be re-ranked;
``total`` and facets are the backend's, unchanged. Serving renders :class:`RankedSearch`; rule
previews run this same code with a draft rule in force.
"""

from __future__ import annotations

from dataclasses import dataclass

from ranking.candidates import CF_MODELS
from ranking.hooks import Assignment, QueryRewrite, RulesHook
from ranking.personalize import personalize
from ranking.pipeline import Pipeline
from ranking.types import Reason, ScoredItem
from search.backend import SearchBackend
from search.query import MAX_RERANK_DEPTH, SearchRequest
from search.result import SearchHit, SearchResult


@dataclass(frozen=True, slots=True)
class SearchTuning:
    """How much personalization moves search results (``settings.search_personalization_*``)."""

    personalization_weight: float
    personalization_top_n: int


@dataclass(frozen=True, slots=True)
class RankedSearch:
    """One search, ranked: the page's items with reasons, and what the backend said."""

    request: SearchRequest
    text: str
    """The query the backend was asked (after a rule's rewrite)."""
    rewrite: QueryRewrite | None
    result: SearchResult
    hits: dict[str, SearchHit]
    page: list[ScoredItem]
    personalized: bool
    backend: str
    assignment: Assignment | None


def rank_search(
    req: SearchRequest,
    *,
    backend: SearchBackend,
    pipeline: Pipeline,
    rules: RulesHook,
    tuning: SearchTuning,
    request_id: str,
) -> RankedSearch:
    """Run every stage of one search for ``req``."""
    ctx, profile, assignment, models = pipeline.begin(
        "search", user_id=req.user_id, request_id=request_id, query=req.text
    )
    rewrite = rules.rewrite_query(req.text, ctx) if req.text else None
    text = rewrite.query if rewrite is not None else req.text
    weight = tuning.personalization_weight
    if assignment is not None and assignment.personalization_weight is not None:
        weight = assignment.personalization_weight
    top_n = tuning.personalization_top_n
    personal = bool(
        req.user_id and profile.personalizable and weight > 0 and text and req.sort == "relevance"
    )
    want = req.page * req.size
    depth = max(top_n, want)
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
                    [h.item_id for h in result.hits[:top_n]],
                    req.user_id if profile.user_factors else None,  # an erased id: history only
                    profile.recent_items[:10],
                )
            except (KeyError, ValueError, IndexError):
                cf_scores = {}
        reranked = personalize(
            result.hits, profile, weight=weight, top_n=top_n, cf_scores=cf_scores
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
        scored = [
            ScoredItem(h.item_id, h.score, (search_reason,), {"lexical": h.score})
            for h in result.hits
        ]
    scored = rules.apply_rules(scored, ctx)
    page = scored[req.page_slice()] if rerank else scored
    return RankedSearch(
        request=req,
        text=text,
        rewrite=rewrite,
        result=result,
        hits=hits,
        page=page,
        personalized=personal,
        backend=result.backend or backend.name,
        assignment=assignment,
    )
