"""Merchandising services of the app: rules, experiments, the served-request log, reports.

:func:`install_merchandising` builds them over the stores (``services.stores``) and plugs
them into a :class:`serving.state.Services`: the rule engine as ``services.rules``,
experiment assignment as ``services.experiments``. Routes and the console reach them
through :func:`merch`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from analytics.search_log import SearchLog
from data.models import Event
from merch.experiments import ExperimentService
from merch.rules.model import Rule
from merch.rules.preview import Ranker, Served
from merch.rules.service import FixedRules, RuleService
from merch.store_adapters import DocumentExperimentStore, DocumentRuleStore, StoreRequestLog
from ranking.hooks import QueryRewrite, RulesHook
from ranking.types import RankContext, Reason, ScoredItem

if TYPE_CHECKING:
    import pyarrow as pa

    from ranking.pipeline import Pipeline
    from serving.state import Services

log = logging.getLogger(__name__)
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Merch:
    rules: RuleService
    experiments: ExperimentService
    requests: StoreRequestLog


def install_merchandising(services: Services) -> Merch:
    """Plug the rule engine, experiment assignment and request log over ``services.stores``
    into ``services``."""
    requests = StoreRequestLog(services.stores.requests)
    experiment_store = DocumentExperimentStore(services.stores.experiments)
    rule_store = DocumentRuleStore(services.stores.rules)
    experiments = ExperimentService(experiment_store)
    rules = RuleService(rule_store, services.catalog, rule_set_for=experiments.rule_set_for)
    services.rules = rules
    services.experiments = experiments
    services.pipeline.request_log = requests  # every served request, for attribution
    m = Merch(rules, experiments, requests)
    services.merch = m
    services.search_log = SearchLog(services.stores.searches)
    log.info(
        "merchandising ready: %d rules, %d experiments",
        len(rules.all_rules()),
        len(experiments.list()),
    )
    return m


def merch(services: Services) -> Merch:
    got = services.merch
    if got is not None:
        return got
    with _lock:
        got = services.merch
        if got is not None:
            return got
        return install_merchandising(services)


# ---------------------------------------------------------------------------- events
def read_events(
    services: Services, start: datetime | None = None, end: datetime | None = None
) -> Iterator[Event]:
    """Events of the event store between ``start`` and ``end`` (both optional)."""
    for e in services.events.iter_events(since=start, until=end):
        if (start is None or e.timestamp >= start) and (end is None or e.timestamp < end):
            yield e


def recent_events(services: Services, limit: int) -> Iterable[Event]:
    """About the last ``limit`` events of the event store, read from its end (previews sample
    recent traffic; reading the whole log cost 10-14 s at 500k events)."""
    return services.events.recent(limit)


def read_events_table(
    services: Services, start: datetime | None = None, end: datetime | None = None
) -> pa.Table:
    """The event store's events between ``start`` and ``end`` as an Arrow table (whole days
    that overlap the window; ``analytics.reports.build_report`` cuts it exactly)."""
    return services.events.read_table(since=start, until=end)


# ---------------------------------------------------------------------------- ranker for previews
_PREVIEW_RULES: ContextVar[RulesHook] = ContextVar("shoprank_preview_rules")


class _PreviewRules:
    """The preview pipeline's rules hook: the rules of the preview running in this context
    (each request's thread has its own context, so concurrent previews never mix)."""

    def fires(self, ctx: RankContext) -> bool:
        return True  # previews record what every rule did

    def apply_rules(self, items: list[ScoredItem], ctx: RankContext) -> list[ScoredItem]:
        return _PREVIEW_RULES.get().apply_rules(items, ctx)

    def rewrite_query(self, query: str, ctx: RankContext) -> QueryRewrite:
        return _PREVIEW_RULES.get().rewrite_query(query, ctx)


def _preview_pipeline(services: Services) -> Pipeline:
    """The app's pipeline, stage for stage (same config, models, candidate sources and their
    caches), with the preview's rules and no request log (a preview is not traffic)."""
    from ranking.pipeline import Pipeline

    got = services.preview_pipeline
    if got is not None:
        return got
    hook = _PreviewRules()
    experiments = services.experiments
    p = Pipeline(  # no request log: a preview is not traffic
        catalog=services.catalog,
        profiles=services.profiles,
        live=services.live,
        config=services.pipeline.config,
        models=lambda: services.models,
        rules=lambda: hook,
        experiments=lambda: experiments,
        request_log=None,
    )
    p.globals = services.pipeline.globals  # the same trending / new-arrival lists
    services.preview_pipeline = p
    return p


def preview_ranker(services: Services, *, k: int = 10) -> Ranker:
    """A ``merch.rules.preview.Ranker`` that runs the live code path with the given rules:
    ``Pipeline.feed`` / ``similar`` / ``bought_together`` like the routes (rules, then
    diversity), and for search the route's own ``run_search`` (rewrite, backend,
    personalization, rules, page) — so "after" is what the API returns once saved."""
    m = merch(services)
    rule_set_for = m.experiments.rule_set_for

    def rank(ctx: RankContext, rules: Sequence[Rule]) -> Served:
        pipe = _preview_pipeline(services)
        hook = FixedRules(list(rules), services.catalog, rule_set_for=rule_set_for)
        token = _PREVIEW_RULES.set(hook)
        try:
            items = _serve(services, pipe, hook, ctx, k)
        finally:
            _PREVIEW_RULES.reset(token)
        trace = hook.first_outcome.trace if hook.first_outcome is not None else ()
        return Served(items, hook.first_plan, trace)

    return rank


def _serve(
    services: Services, pipe: Pipeline, hook: FixedRules, ctx: RankContext, k: int
) -> list[ScoredItem]:
    rid = "preview-" + uuid.uuid4().hex[:12]
    if ctx.surface == "search":
        if services.search is None or not ctx.query:
            return []
        from search.query import SearchRequest
        from serving.services import run_search

        req = SearchRequest(text=ctx.query, user_id=ctx.user_id, size=k)
        out = run_search(
            req, backend=services.search, pipeline=pipe, rules=hook, catalog=services.catalog,
            settings=services.settings, debug=True, request_id=rid,
        )
        return [
            ScoredItem(
                h.item_id,
                h.score,
                tuple(Reason(**r.model_dump(exclude_none=True)) for r in h.reasons),
                dict(h.breakdown or {}),
            )
            for h in out.hits
        ]
    if ctx.surface == "similar" and ctx.item_id:
        return pipe.similar(item_id=ctx.item_id, n=k, user_id=ctx.user_id, request_id=rid).items
    if ctx.surface == "bought_together" and ctx.item_id:
        return pipe.bought_together(
            item_id=ctx.item_id, n=k, user_id=ctx.user_id, request_id=rid
        ).items
    return pipe.feed(user_id=ctx.user_id, category=ctx.category, request_id=rid).items[:k]
