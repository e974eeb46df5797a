"""Extension points of online ranking: merchandising rules and experiment assignment.

The pipeline calls, in this order::

    assignment = experiments.assign(ctx)            # once per request, before ranking
    request_log.record(request_id=…, surface=…, …)  # then the served request is logged
    ... candidates → blend → filter ...
    items = rules.apply_rules(items, ctx)           # after filtering, before diversity
                                                    # (skipped when rules.fires(ctx) is False)
    rewrite = rules.rewrite_query(query, ctx)       # search only, before the backend is asked

The defaults do nothing. The rule engine and the experiment registry (``merch/rules.py``,
``merch/experiments.py``) implement these protocols and are put on
``serving.state.Services.rules`` / ``.experiments`` when the app is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Protocol, runtime_checkable

from ranking.types import RankContext, ScoredItem


@dataclass(frozen=True, slots=True)
class QueryRewrite:
    """What rules make of a search query before it reaches the backend."""

    query: str
    """The query to search (unchanged when no rule applies)."""
    redirect: str | None = None
    """A URL or category path the storefront should go to instead of showing results."""
    rule_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Assignment:
    """A user's variant in an experiment and what it overrides."""

    experiment: str
    variant: str
    model_versions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Model name → version to use instead of the current one."""
    blend_weights: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    """Feed slot / candidate source → weight, replacing the configured ones."""
    personalization_weight: float | None = None
    """Search personalization weight, replacing the configured one."""
    rule_set: str | None = None
    """Rule set the rule engine should use for this request (the engine reads it from ctx)."""


@runtime_checkable
class RulesHook(Protocol):
    def apply_rules(self, items: list[ScoredItem], ctx: RankContext) -> list[ScoredItem]: ...

    def rewrite_query(self, query: str, ctx: RankContext) -> QueryRewrite: ...


@runtime_checkable
class ExperimentHook(Protocol):
    def assign(self, ctx: RankContext) -> Assignment | None:
        """The request's variant (None: not in an experiment); records nothing."""
        ...


@runtime_checkable
class RequestLogHook(Protocol):
    """Where the pipeline logs each served request (request id, surface, user, variant) for
    attribution: ``merch.request_log`` and the shared store's adapter implement it."""

    def record(
        self,
        *,
        request_id: str,
        at: datetime,
        surface: str,
        user_id: str | None = None,
        experiment: str | None = None,
        variant: str | None = None,
        query: str | None = None,
        item_id: str | None = None,
    ) -> None: ...


class NoRules:
    """The default: no rule changes anything."""

    def fires(self, ctx: RankContext) -> bool:
        """Optional on a hook: False promises ``apply_rules`` would change nothing in this
        context, so ranking may skip it (and build only the items it shows)."""
        return False

    def apply_rules(self, items: list[ScoredItem], ctx: RankContext) -> list[ScoredItem]:
        return items

    def rewrite_query(self, query: str, ctx: RankContext) -> QueryRewrite:
        return QueryRewrite(query=query)


class NoExperiments:
    """The default: nobody is in an experiment."""

    def assign(self, ctx: RankContext) -> Assignment | None:
        return None
