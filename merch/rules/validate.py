"""Reject rules that cannot be applied as written, saying why.

:func:`rule_problems` returns every problem (empty when the rule is fine) and
:func:`rule_warnings` things that are allowed but probably a mistake (a brand no item has).
:func:`check_rule` raises :class:`merch.errors.RuleValidationError` with all the problems.
"""

from __future__ import annotations

from collections.abc import Iterable

from data.catalog import Catalog
from merch.errors import RuleValidationError
from merch.rules.engine import normalize_query, query_matches
from merch.rules.model import (
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
)


def _filters(rule: Rule) -> list[tuple[str, ItemFilter]]:
    out: list[tuple[str, ItemFilter]] = []
    for n, a in enumerate(rule.actions, 1):
        if isinstance(a, BoostAction | HideAction | FilterAction):
            out.append((f"actions[{n}] ({a.kind})", a.filter))
    return out


def rule_problems(rule: Rule, catalog: Catalog, others: Iterable[Rule] = ()) -> list[str]:
    problems: list[str] = []
    if rule.start is not None and rule.end is not None and rule.end <= rule.start:
        problems.append(
            f"end: the window ends ({rule.end.isoformat()}) before or when it starts "
            f"({rule.start.isoformat()}); set end after start"
        )
    if rule.condition.query is not None and not normalize_query(rule.condition.query.text):
        problems.append("condition.query.text: is empty after normalization")

    seen_slots: dict[int, str] = {}
    seen_items: dict[str, int] = {}
    for n, a in enumerate(rule.actions, 1):
        where = f"actions[{n}] ({a.kind})"
        if isinstance(a, PinAction):
            for p in a.pins:
                if p.item_id not in catalog:
                    problems.append(
                        f"{where}: unknown item {p.item_id!r}; pin an item of the catalog"
                    )
                elif not catalog.is_recommendable(p.item_id):
                    problems.append(
                        f"{where}: item {p.item_id!r} is inactive or out of stock, "
                        "so it would never show"
                    )
                if p.position in seen_slots and seen_slots[p.position] != p.item_id:
                    problems.append(
                        f"{where}: conflicting pins at position {p.position} "
                        f"({seen_slots[p.position]!r} and {p.item_id!r}); give each its own slot"
                    )
                if p.item_id in seen_items and seen_items[p.item_id] != p.position:
                    problems.append(
                        f"{where}: item {p.item_id!r} pinned at two positions "
                        f"({seen_items[p.item_id]} and {p.position})"
                    )
                seen_slots.setdefault(p.position, p.item_id)
                seen_items.setdefault(p.item_id, p.position)
        elif isinstance(a, RedirectAction | RewriteAction):
            if rule.condition.contexts and "search" not in rule.condition.contexts:
                problems.append(
                    f"{where}: only applies to searches; add 'search' to condition.contexts"
                )
            if rule.condition.query is None:
                problems.append(
                    f"{where}: needs a query condition, or it would change every search"
                )
            if isinstance(a, RedirectAction):
                if (a.category is None) == (a.url is None):
                    problems.append(f"{where}: give exactly one of category or url")
                if a.url is not None and not a.url.startswith(("http://", "https://", "/")):
                    problems.append(f"{where}: url must start with http://, https:// or /")
                if a.category is not None and not catalog.items_in_category(a.category):
                    problems.append(f"{where}: no item is in category {' > '.join(a.category)!r}")
    for where, f in _filters(rule):
        if f.is_empty():
            problems.append(f"{where}: the filter is empty and would match every item; narrow it")
        unknown = [i for i in f.item_ids if i not in catalog]
        if unknown:
            problems.append(f"{where}: unknown item(s) {', '.join(map(repr, unknown))}")
        if f.price_min is not None and f.price_max is not None and f.price_max < f.price_min:
            problems.append(f"{where}: price_max is below price_min")

    for other in others:
        if other.rule_id == rule.rule_id or not other.enabled or not rule.enabled:
            continue
        if other.rule_set != rule.rule_set or not may_overlap(rule, other):
            continue
        theirs = {p.position: p.item_id for p in other.pins}
        for p in rule.pins:
            if p.position in theirs and theirs[p.position] != p.item_id:
                problems.append(
                    f"conflicting pins at position {p.position}: rule {other.rule_id!r} pins "
                    f"{theirs[p.position]!r} there for overlapping requests; change the slot, "
                    "narrow a condition or disable one rule"
                )
    return problems


def rule_warnings(rule: Rule, catalog: Catalog) -> list[str]:
    warnings: list[str] = []
    brands = {b.casefold() for b in catalog.brands()}
    for where, f in _filters(rule):
        for b in f.brands:
            if b.casefold() not in brands:
                warnings.append(f"{where}: no item has brand {b!r}")
        for c in f.categories:
            if not catalog.items_in_category(c):
                warnings.append(f"{where}: no item is in category {' > '.join(c)!r}")
    return warnings


def check_rule(rule: Rule, catalog: Catalog, others: Iterable[Rule] = ()) -> None:
    problems = rule_problems(rule, catalog, others)
    if problems:
        raise RuleValidationError(problems)


def _windows_overlap(a: Rule, b: Rule) -> bool:
    if a.end is not None and b.start is not None and a.end <= b.start:
        return False
    return not (b.end is not None and a.start is not None and b.end <= a.start)


def _conditions_overlap(a: Condition, b: Condition) -> bool:
    if a.contexts and b.contexts and not set(a.contexts) & set(b.contexts):
        return False
    if a.query is not None and b.query is not None and not _queries_overlap(a.query, b.query):
        return False
    if a.category is not None and b.category is not None:
        n = min(len(a.category), len(b.category))
        if a.category[:n] != b.category[:n]:
            return False
    for name, allowed in a.user_attributes.items():
        if name in b.user_attributes and not set(allowed) & set(b.user_attributes[name]):
            return False
    return True


def _queries_overlap(a: QueryCondition, b: QueryCondition) -> bool:
    """Equals/equals: the same text. Equals/contains: the exact query has the words.
    Contains/contains: one's words include the other's (a query that merely mentions two
    unrelated phrases is rare, and then the documented order decides)."""
    if a.match == "equals" and b.match == "equals":
        return normalize_query(a.text) == normalize_query(b.text)
    if a.match == "equals":
        return query_matches(b, a.text)
    if b.match == "equals":
        return query_matches(a, b.text)
    return query_matches(a, b.text) or query_matches(b, a.text)


def may_overlap(a: Rule, b: Rule) -> bool:
    """Whether one request could fire both rules (conservative: True when unsure)."""
    return _windows_overlap(a, b) and _conditions_overlap(a.condition, b.condition)
