"""Preview a draft rule before it is saved: its problems and warnings, before/after for one
request (a query, a user or an anchor item) and an estimate of its impact on recent traffic.

The lists come from serving's own code path with the draft in force (the ranker
``serving.deps.get_rule_previewer`` passes is :func:`serving.merch.preview_ranker`), so "after"
is what the API returns once the rule is saved. ``POST /v1/rules/preview``, the console's rule
form and ``shoprank rules preview`` call :meth:`RulePreviewer.preview`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from data.catalog import Catalog
from data.models import Event
from merch.request_log import RequestLog
from merch.rules.model import Rule, RuleContext
from merch.rules.preview import (
    ImpactEstimate,
    ListPreview,
    Ranker,
    default_surface,
    estimate_impact,
    preview_context,
    sample_contexts,
    served_samples,
)
from merch.rules.service import RuleService
from merch.rules.spec import RuleSpec
from merch.rules.validate import rule_problems, rule_warnings
from ranking.store_profiles import StoreProfiles
from ranking.types import RankContext


@dataclass(frozen=True, slots=True)
class PreviewTarget:
    """Which request to preview and how much traffic to sample (``PreviewIn`` of the API)."""

    surface: RuleContext | None = None
    """None: search when the rule has a query condition, else its first context."""
    query: str | None = None
    user_id: str | None = None
    item_id: str | None = None
    category: str | None = None
    """'A > B'"""
    k: int = 10
    sample_size: int = 30
    """Requests to sample for the impact estimate; 0 skips it."""
    sample_last: int = 5000
    """Recent events to sample from."""


@dataclass(frozen=True, slots=True)
class RulePreview:
    """What a preview found (the API renders it as ``PreviewOut``)."""

    draft: Rule
    problems: list[str]
    warnings: list[str]
    preview: ListPreview
    impact: ImpactEstimate | None

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class RulePreviewer:
    """The rule preview use case over the parts it reads."""

    rules: RuleService
    catalog: Catalog
    profiles: StoreProfiles
    ranker: Callable[[int], Ranker]
    """A ranker with the draft's rules in force, for lists of ``k`` items."""
    recent_events: Callable[[int], Iterable[Event]]
    """About the last ``n`` events of the durable log."""
    requests: RequestLog

    def _attributes(self, user_id: str) -> dict[str, str | int | float | bool]:
        return dict(self.profiles.get(user_id).attributes)

    def preview(
        self, spec: RuleSpec, target: PreviewTarget, *, rule_id: str | None = None
    ) -> RulePreview:
        """Preview ``spec`` (saved as ``rule_id``, else its own id, else ``draft``)."""
        draft = spec.to_rule(rule_id or spec.id or "draft")
        stored = self.rules.store.list(draft.rule_set)
        problems = rule_problems(draft, self.catalog, stored)
        warnings = rule_warnings(draft, self.catalog)
        surface: RuleContext = target.surface or default_surface(draft)
        now = datetime.now(UTC)
        profile = self.profiles.get(target.user_id) if target.user_id else None
        query = target.query
        if surface == "search" and not query and draft.condition.query is not None:
            query = draft.condition.query.text
        category = target.category
        ctx = RankContext(
            surface=surface,
            user_id=target.user_id,
            user_attributes=dict(profile.attributes) if profile is not None else {},
            query=query if surface == "search" else None,
            category=tuple(p.strip() for p in category.split(">") if p.strip())
            if category else None,
            item_id=target.item_id,
            now=now,
        )
        ranker = self.ranker(target.k)
        every = self.rules.all_rules()  # all rule sets: serving picks the request's set itself
        one = preview_context(draft, every, ctx, ranker, self.catalog, k=target.k)
        impact = None
        if target.sample_size > 0:
            samples = sample_contexts(
                self.recent_events(4 * target.sample_last),
                surface,
                n=target.sample_size,
                last=target.sample_last,
                now=now,
                user_attributes=self._attributes,
            )
            if not samples:  # no events yet: sample the requests the API served instead
                samples = served_samples(
                    self.requests.recent(None, target.sample_last),
                    surface,
                    target.sample_size,
                    now,
                    self._attributes,
                )
            impact = estimate_impact(draft, every, samples, ranker, self.catalog, k=target.k)
        return RulePreview(draft, problems, warnings, one, impact)
