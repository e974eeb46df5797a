"""Apply merchandising rules to a ranked list and to a search query.

The order is fixed and documented:

1. Rules are taken by priority (highest first), then by rule id (ascending). Disabled rules,
   rules outside their active window, and rules whose condition does not hold are skipped.
2. A firing rule applies its actions in the order they are written. When two rules disagree
   the earlier one wins: an item pinned by an earlier rule is never hidden or filtered out by
   a later one, an item hidden by an earlier rule is never pinned by a later one, and a slot
   taken by an earlier pin is not given to a later one.
3. ``stop_processing`` on a firing rule ends the chain.
4. The list is then built: if any boost or bury fired, unpinned items are re-sorted by their
   new score (stable); otherwise their order is kept. Pinned items are placed at their slots
   (1-based); a slot past the end of the list appends the item.

Every item a rule touched carries ``Reason(source="rule", rule_id=…)`` and, for a boost or
bury, a ``rule:<id>`` component in its score breakdown. Query rules (rewrite, redirect) are
handled by :func:`plan_query`, before search runs; they match the original query.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from types import MappingProxyType

from data.catalog import Catalog
from data.models import Item
from data.text import normalize
from merch.rules.model import (
    CONTEXT_SURFACES,
    BoostAction,
    Condition,
    FilterAction,
    HideAction,
    ItemFilter,
    PinAction,
    QueryCondition,
    RedirectAction,
    RewriteAction,
    Rule,
    sort_rules,
)
from ranking.types import RankContext, Reason, ScoredItem

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- matching
def normalize_query(text: str) -> str:
    """The same normalization search uses (``data.text.normalize``)."""
    return " ".join(normalize(text).split())


_LATIN_WORD = re.compile(r"^[0-9a-z_\-'.]+$")


@lru_cache(maxsize=4096)
def _normalized(text: str) -> str:
    return normalize_query(text)


def query_matches(cond: QueryCondition, query: str | None) -> bool:
    """Whether a (raw) query satisfies a query condition, after normalization."""
    if query is None or not query.strip():
        return False
    q = _normalized(query)
    want = _normalized(cond.text)
    if not want:
        return False
    if cond.match == "equals":
        return q == want
    tokens = set(q.split())
    for word in want.split():
        if _LATIN_WORD.match(word):
            if word not in tokens:
                return False
        elif word not in q:  # Chinese (or mixed) words match as substrings
            return False
    return True


def condition_holds(cond: Condition, ctx: RankContext) -> tuple[bool, str]:
    """(holds, why-not) for a request context."""
    if cond.contexts and not any(ctx.surface in CONTEXT_SURFACES[c] for c in cond.contexts):
        return False, f"surface {ctx.surface} not in {', '.join(cond.contexts)}"
    if cond.query is not None and not query_matches(cond.query, ctx.query):
        return False, f"query does not {cond.query.match} {cond.query.text!r}"
    if cond.category is not None:
        got = tuple(ctx.category or ())
        if got[: len(cond.category)] != cond.category:
            return False, f"category is not under {' > '.join(cond.category)}"
    for name, allowed in cond.user_attributes.items():
        value = ctx.user_attributes.get(name)
        if value is None or _as_text(value) not in allowed:
            return False, f"user {name} not in {', '.join(allowed)}"
    return True, ""


def _as_text(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def rule_fires(rule: Rule, ctx: RankContext) -> tuple[bool, str]:
    if not rule.enabled:
        return False, "disabled"
    if not rule.is_active(ctx.now):
        return False, "outside its active window"
    return condition_holds(rule.condition, ctx)


def item_matches(f: ItemFilter, item_id: str, item: Item | None, now: datetime) -> bool:
    if f.item_ids and item_id not in f.item_ids:
        return False
    if item is None:
        return bool(f.item_ids) and _only_ids(f)
    if f.brands and (
        item.brand is None or item.brand.casefold() not in {b.casefold() for b in f.brands}
    ):
        return False
    if f.categories and not any(item.category[: len(c)] == c for c in f.categories):
        return False
    if f.tags and not set(f.tags) & set(item.tags):
        return False
    if f.price_min is not None and item.price < f.price_min:
        return False
    if f.price_max is not None and item.price > f.price_max:
        return False
    if f.new_arrival_days is not None and item.created_at < now - timedelta(
        days=f.new_arrival_days
    ):
        return False
    return not (f.in_stock is not None and item.in_stock != f.in_stock)


def _only_ids(f: ItemFilter) -> bool:
    return f == ItemFilter(item_ids=f.item_ids)


# ---------------------------------------------------------------------------- list rules
@dataclass(frozen=True, slots=True)
class RuleTrace:
    """What one rule did to one request: for previews and debug output."""

    rule_id: str
    name: str
    fired: bool
    why_not: str = ""
    effects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    items: list[ScoredItem]
    fired: tuple[str, ...]
    removed: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Item id → id of the rule that hid or filtered it out."""
    trace: tuple[RuleTrace, ...] = ()


def _reason(rule: Rule, detail: str) -> Reason:
    return Reason(source="rule", rule_id=rule.rule_id, detail=detail)


def apply_rules(
    items: Sequence[ScoredItem],
    ctx: RankContext,
    rules: Iterable[Rule],
    catalog: Catalog,
) -> RuleOutcome:
    """Apply the list actions of every firing rule to a ranked list (see the module doc)."""
    current: dict[str, ScoredItem] = {s.item_id: s for s in items}
    order = [s.item_id for s in items]
    if items:
        scores = [s.score for s in items]
        spread = (max(scores) - min(scores)) or max(abs(max(scores)), 1.0)
    else:
        spread = 1.0
    pins: dict[int, tuple[str, str]] = {}  # slot → (item id, rule id)
    pinned_by: dict[str, str] = {}
    removed: dict[str, str] = {}
    fired: list[str] = []
    trace: list[RuleTrace] = []
    boosted = False

    def matching(f: ItemFilter) -> list[str]:
        return [i for i in order if i in current and item_matches(f, i, catalog.get(i), ctx.now)]

    for rule in sort_rules(list(rules)):
        ok, why = rule_fires(rule, ctx)
        if not ok:
            trace.append(RuleTrace(rule.rule_id, rule.name, False, why))
            continue
        effects: list[str] = []
        for action in rule.actions:
            if isinstance(action, PinAction):
                for pin in action.pins:
                    if pin.item_id in removed:
                        effects.append(
                            f"{pin.item_id} not pinned: removed by rule {removed[pin.item_id]}"
                        )
                    elif pin.item_id in pinned_by:
                        effects.append(
                            f"{pin.item_id} already pinned by rule {pinned_by[pin.item_id]}"
                        )
                    elif pin.position in pins:
                        effects.append(
                            f"slot {pin.position} already taken by rule {pins[pin.position][1]}"
                        )
                    elif pin.item_id not in current and not catalog.is_recommendable(pin.item_id):
                        effects.append(
                            f"{pin.item_id} not pinned: inactive, out of stock or unknown"
                        )
                    elif pin.item_id == ctx.item_id:
                        effects.append(f"{pin.item_id} not pinned: it is the anchor item")
                    else:
                        pins[pin.position] = (pin.item_id, rule.rule_id)
                        pinned_by[pin.item_id] = rule.rule_id
                        base = current.get(pin.item_id) or ScoredItem(
                            item_id=pin.item_id, score=0.0
                        )
                        current[pin.item_id] = base.with_reason(
                            _reason(rule, f"pinned at {pin.position}")
                        )
                        if pin.item_id not in order:
                            order.append(pin.item_id)
                        effects.append(f"pinned {pin.item_id} at {pin.position}")
            elif isinstance(action, BoostAction):
                sign = 1.0 if action.kind == "boost" else -1.0
                delta = sign * action.weight * spread
                hits = matching(action.filter)
                for i in hits:
                    current[i] = (
                        current[i]
                        .with_component(f"rule:{rule.rule_id}", delta)
                        .with_reason(
                            _reason(
                                rule,
                                f"{action.kind} {action.weight:g} ({action.filter.describe()})",
                            )
                        )
                    )
                boosted = boosted or bool(hits)
                effects.append(f"{action.kind} {len(hits)} item(s) by {action.weight:g}")
            elif isinstance(action, HideAction):
                hits = [i for i in matching(action.filter) if i not in pinned_by]
                for i in hits:
                    removed[i] = rule.rule_id
                    del current[i]
                effects.append(f"hid {len(hits)} item(s)")
            elif isinstance(action, FilterAction):
                keep = set(matching(action.filter)) | set(pinned_by)
                gone = [i for i in order if i in current and i not in keep]
                for i in gone:
                    removed[i] = rule.rule_id
                    del current[i]
                for i in keep & set(current):
                    if i not in pinned_by:
                        current[i] = current[i].with_reason(
                            _reason(rule, f"kept by filter ({action.filter.describe()})")
                        )
                effects.append(f"filtered out {len(gone)} item(s)")
            # query actions are handled by plan_query
        fired.append(rule.rule_id)
        trace.append(RuleTrace(rule.rule_id, rule.name, True, "", tuple(effects)))
        if rule.stop_processing:
            for later in sort_rules(list(rules)):
                if later.order_key > rule.order_key:
                    trace.append(
                        RuleTrace(
                            later.rule_id, later.name, False, f"stopped by rule {rule.rule_id}"
                        )
                    )
            break

    unpinned = [current[i] for i in order if i in current and i not in pinned_by]
    if boosted:
        # ties go to the item the rules favoured more (weight 1.0 really reaches the top)
        unpinned.sort(key=lambda s: (-s.score, -_rule_delta(s)))
    result: list[ScoredItem] = list(unpinned)
    for slot in sorted(pins):
        item_id, _ = pins[slot]
        result.insert(min(slot - 1, len(result)), current[item_id])
    return RuleOutcome(result, tuple(fired), MappingProxyType(removed), tuple(trace))


def _rule_delta(s: ScoredItem) -> float:
    return sum(v for k, v in s.breakdown.items() if k.startswith("rule:"))


# ---------------------------------------------------------------------------- query rules
@dataclass(frozen=True, slots=True)
class QueryPlan:
    """What search should do with a query after query rules ran."""

    original: str
    query: str
    """The text to search for (rewritten by a ``replace`` rule, else the original)."""
    extra_terms: tuple[str, ...] = ()
    """One-way synonyms to search for as well."""
    redirect_category: tuple[str, ...] | None = None
    redirect_url: str | None = None
    rule_ids: tuple[str, ...] = ()

    @property
    def redirected(self) -> bool:
        return self.redirect_category is not None or self.redirect_url is not None


def plan_query(query: str, ctx: RankContext, rules: Iterable[Rule]) -> QueryPlan:
    """Run rewrite and redirect rules for a search query, in the documented order.

    Conditions match the original query. The first firing ``replace`` wins; ``synonyms``
    accumulate; the first firing redirect wins and ends the chain.
    """
    text = query
    extra: list[str] = []
    used: list[str] = []
    replaced = False
    for rule in sort_rules(list(rules)):
        if not any(isinstance(a, RewriteAction | RedirectAction) for a in rule.actions):
            if rule.stop_processing and rule_fires(rule, ctx)[0]:
                break
            continue
        if not rule_fires(rule, ctx)[0]:
            continue
        for action in rule.actions:
            if isinstance(action, RedirectAction):
                return QueryPlan(
                    original=query,
                    query=text,
                    extra_terms=tuple(extra),
                    redirect_category=action.category,
                    redirect_url=action.url,
                    rule_ids=(*used, rule.rule_id),
                )
            if isinstance(action, RewriteAction):
                if action.mode == "replace" and not replaced:
                    text, replaced = action.text, True
                elif action.mode == "synonyms" and action.text not in extra:
                    extra.append(action.text)
        used.append(rule.rule_id)
        if rule.stop_processing:
            break
    return QueryPlan(original=query, query=text, extra_terms=tuple(extra), rule_ids=tuple(used))
