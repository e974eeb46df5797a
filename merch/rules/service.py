"""The rule engine the app uses: storage + validation + the pipeline hooks.

:class:`RulesHookBase` implements ``ranking.hooks.RulesHook`` (``apply_rules`` and
``rewrite_query``) over some list of rules: the rule set of a request is ``default`` unless
``rule_set_for(ctx)`` (wired to the experiment registry) names another one.

* :class:`RuleService` — the live hook: reads rules from a :class:`merch.rules.store.RuleStore`,
  keeps them in memory and reloads them when the store's revision changes (so a rule saved
  through any API replica is live on the next request).
* :class:`FixedRules` — the same hook over a given list (stored rules with a draft in place),
  remembering what it did: what previews run the real pipeline with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.errors import StorageUnavailableError
from data.catalog import Catalog
from merch.errors import RuleNotFoundError
from merch.rules.engine import QueryPlan, RuleOutcome, apply_rules, plan_query, rule_fires
from merch.rules.model import DEFAULT_RULE_SET, Rule
from merch.rules.spec import RuleSpec
from merch.rules.store import RuleStore
from merch.rules.validate import check_rule, rule_warnings
from ranking.hooks import QueryRewrite
from ranking.types import RankContext, ScoredItem

log = logging.getLogger(__name__)

RuleSetChooser = Callable[[RankContext], str | None]


class RulesHookBase:
    """Rule-set choice, rule application and query rewriting over :meth:`all_rules`."""

    def __init__(self, catalog: Catalog, *, rule_set_for: RuleSetChooser | None = None) -> None:
        self.catalog = catalog
        self.rule_set_for = rule_set_for

    def all_rules(self) -> list[Rule]:
        raise NotImplementedError

    def rule_set_of(self, ctx: RankContext) -> str:
        chosen = self.rule_set_for(ctx) if self.rule_set_for is not None else None
        return chosen or DEFAULT_RULE_SET

    def rules_for(self, ctx: RankContext) -> list[Rule]:
        rule_set = self.rule_set_of(ctx)
        return [r for r in self.all_rules() if r.rule_set == rule_set]

    def rule_sets(self) -> list[str]:
        return sorted({r.rule_set for r in self.all_rules()} | {DEFAULT_RULE_SET})

    # ------------------------------------------------------------------ hooks
    def fires(self, ctx: RankContext) -> bool:
        """Whether any rule of the context's rule set fires (else applying them is a no-op)."""
        return any(rule_fires(r, ctx)[0] for r in self.rules_for(ctx))

    def outcome(self, items: list[ScoredItem], ctx: RankContext) -> RuleOutcome:
        return apply_rules(items, ctx, self.rules_for(ctx), self.catalog)

    def apply_rules(self, items: list[ScoredItem], ctx: RankContext) -> list[ScoredItem]:
        return self.outcome(items, ctx).items

    def plan(self, query: str, ctx: RankContext) -> QueryPlan:
        return plan_query(query, ctx, self.rules_for(ctx))

    def rewrite_query(self, query: str, ctx: RankContext) -> QueryRewrite:
        plan = self.plan(query, ctx)
        text = plan.query
        if plan.extra_terms:
            text = " ".join((text, *plan.extra_terms))
        redirect = plan.redirect_url
        if plan.redirect_category is not None:
            redirect = " > ".join(plan.redirect_category)
        return QueryRewrite(query=text, redirect=redirect, rule_ids=plan.rule_ids)


class FixedRules(RulesHookBase):
    """The hooks over a fixed list of rules (every rule set), recording the first rule
    application's outcome and the first query plan — one instance per previewed request."""

    def __init__(
        self, rules: list[Rule], catalog: Catalog, *, rule_set_for: RuleSetChooser | None = None
    ) -> None:
        super().__init__(catalog, rule_set_for=rule_set_for)
        self._rules = list(rules)
        self.first_outcome: RuleOutcome | None = None
        self.first_plan: QueryPlan | None = None

    def all_rules(self) -> list[Rule]:
        return list(self._rules)

    def fires(self, ctx: RankContext) -> bool:
        return True  # a preview records what every rule did, firing or not

    def outcome(self, items: list[ScoredItem], ctx: RankContext) -> RuleOutcome:
        out = super().outcome(items, ctx)
        if self.first_outcome is None:
            self.first_outcome = out
        return out

    def plan(self, query: str, ctx: RankContext) -> QueryPlan:
        got = super().plan(query, ctx)
        if self.first_plan is None:
            self.first_plan = got
        return got


class RuleService(RulesHookBase):
    def __init__(
        self,
        store: RuleStore,
        catalog: Catalog,
        *,
        rule_set_for: RuleSetChooser | None = None,
        reload_check_seconds: float = 0.5,
    ) -> None:
        super().__init__(catalog, rule_set_for=rule_set_for)
        self.store = store
        self._reload_check = reload_check_seconds
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._revision = -1
        self._checked_at = 0.0

    def invalidate(self) -> None:
        """Rules changed in another process: the next read checks the store's revision."""
        with self._lock:
            self._checked_at = float("-inf")

    # ------------------------------------------------------------------ reading
    def all_rules(self) -> list[Rule]:
        now = time.monotonic()
        with self._lock:
            if now - self._checked_at >= self._reload_check or self._revision < 0:
                self._checked_at = now
                try:
                    rev = self.store.revision()
                    if rev != self._revision:
                        self._rules = self.store.list()
                        self._revision = rev
                except StorageUnavailableError as exc:
                    if self._revision < 0:
                        raise  # no rules known yet: what needs them answers 503
                    log.warning("rules store unavailable (%s): keeping the rules read last", exc)
            return list(self._rules)

    def get(self, rule_id: str) -> Rule:
        return self.store.get(rule_id)

    # ------------------------------------------------------------------ writing
    def validate(self, rule: Rule) -> list[str]:
        """Raise RuleValidationError if the rule cannot be applied; return warnings."""
        check_rule(rule, self.catalog, self.store.list(rule.rule_set))
        return rule_warnings(rule, self.catalog)

    def create(self, spec: RuleSpec) -> tuple[Rule, list[str]]:
        rule = spec.to_rule()
        warnings = self.validate(rule)
        self.store.put(rule, create=True)
        self._checked_at = 0.0
        return rule, warnings

    def update(self, rule_id: str, spec: RuleSpec) -> tuple[Rule, list[str]]:
        self.store.get(rule_id)  # 404 when missing
        rule = spec.to_rule(rule_id)
        warnings = self.validate(rule)
        self.store.put(rule)
        self._checked_at = 0.0
        return rule, warnings

    def set_enabled(self, rule_id: str, enabled: bool) -> Rule:
        rule = self.store.get(rule_id)
        spec = RuleSpec.of(rule).model_copy(update={"enabled": enabled})
        return self.update(rule_id, spec)[0]

    def delete(self, rule_id: str) -> None:
        self.store.delete(rule_id)
        self._checked_at = 0.0


__all__ = ["FixedRules", "RuleNotFoundError", "RuleService", "RulesHookBase"]
