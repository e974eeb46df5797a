"""Merchandising rules: data (`model`), JSON form (`spec`), application (`engine`),
validation (`validate`), previews (`preview`) and the service the app uses (`service`).

Importing this package is cheap; the app builds a :class:`merch.rules.service.RuleService`.
"""

from __future__ import annotations

from merch.rules.engine import QueryPlan, RuleOutcome, apply_rules, plan_query
from merch.rules.model import (
    DEFAULT_RULE_SET,
    BoostAction,
    Condition,
    FilterAction,
    HideAction,
    ItemFilter,
    Pin,
    PinAction,
    QueryCondition,
    RedirectAction,
    RewriteAction,
    Rule,
    sort_rules,
)
from merch.rules.spec import RuleSpec

__all__ = [
    "DEFAULT_RULE_SET",
    "BoostAction",
    "Condition",
    "FilterAction",
    "HideAction",
    "ItemFilter",
    "Pin",
    "PinAction",
    "QueryCondition",
    "QueryPlan",
    "RedirectAction",
    "RewriteAction",
    "Rule",
    "RuleOutcome",
    "RuleSpec",
    "apply_rules",
    "plan_query",
    "sort_rules",
]
