"""Use cases of the API, between the routes (parse, render) and the layers below.

Each takes the parts it needs, not the whole app state, so a route, the console, a rule
preview and a bench call the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from analytics.search_log import SearchLog
from core.settings import Settings
from data.catalog import Catalog
from data.erasure import erase_from_shop_files
from ranking.hooks import RulesHook
from ranking.pipeline import Pipeline
from ranking.search import SearchTuning, rank_search
from search.backend import SearchBackend
from search.query import SearchRequest
from serving.errors import Unavailable
from serving.render import card, reason_out
from serving.schemas import FacetValueOut, RelaxationOut, SearchHitOut, SearchOut

if TYPE_CHECKING:
    from serving.state import Services


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
    search_log: SearchLog | None = None,
) -> SearchOut:
    """One search, all stages (:func:`ranking.search.rank_search`), rendered for the API.
    ``search_log``: where storefront searches are logged for search analytics (rule
    previews and the console's own searches pass none)."""
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
        if h is not None:  # the index's hit carries what the answer shows
            title, brand, category = h.title, h.brand, list(h.category)
            price, currency, in_stock = h.price, h.currency, h.stock > 0
            lexical, highlighted = h.score, h.highlighted_title
        else:  # an item the rules or personalization added: its catalog card
            c = card(catalog, it.item_id)
            if c is None:
                continue
            title, brand, category, price, currency, in_stock = c
            lexical, highlighted = 0.0, title
        out_hits.append(
            SearchHitOut(
                item_id=it.item_id,
                score=round(it.score, 6),
                lexical_score=lexical,
                title=title,
                highlighted_title=highlighted,
                brand=brand,
                category=category,
                price=price,
                currency=currency,
                in_stock=in_stock,
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
    relax = result.relaxation
    if search_log is not None and req.text:
        search_log.record(
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


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed (the counts the API returns)."""

    events: int
    profile: bool
    shop_file_records: int
    served_requests: int
    cached_feeds: int


def erase_user(services: Services, user_id: str) -> Erasure:
    """Erase a user everywhere the service keeps them, the record of the erasure first (from
    then on training and a restart leave them out): events, profile and shopper state, the
    user id of the requests served to them (this process's buffer too), the shop's own files,
    cached feed pages and their searches (kept without user id and text)."""
    known_before = user_id in services.profiles  # the user store forgets them next
    with services.profiles.erasing(user_id):  # this process's own: not the change feed's
        services.users.erase(user_id)
        erased = services.events.erase_user(user_id)
        known, served = services.forget_user(user_id)
    shop = erase_from_shop_files(services.settings.data_dir, user_id)
    feeds = services.feed_cache.forget_user(user_id)
    if services.search_log is not None:
        services.search_log.forget_user(user_id)
    return Erasure(
        events=erased if isinstance(erased, int) else 0, profile=known or known_before,
        shop_file_records=shop.users + shop.events, served_requests=served, cached_feeds=feeds,
    )
