"""Merchandising rules as plain, frozen data.

A :class:`Rule` is a condition (where and for whom it fires) plus a list of actions. Rules
are grouped in named rule sets; a request uses the ``default`` set unless an experiment
variant selects another one. The JSON form used by the API and files is
:class:`merch.rules.spec.RuleSpec`; this module is what the engine works with.

Positions are 1-based everywhere a person sees them (``position=1`` is the first slot).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Literal

from ranking.types import Surface

RuleContext = Literal["feed", "search", "similar", "bought_together"]
RULE_CONTEXTS: tuple[RuleContext, ...] = ("feed", "search", "similar", "bought_together")
QueryMatchMode = Literal["equals", "contains"]
DEFAULT_RULE_SET = "default"

# Surfaces of the ranking pipeline that a rule context covers: "feed" also covers the
# personalized recommendation and trending lists shown on the home page.
CONTEXT_SURFACES: Mapping[RuleContext, frozenset[Surface]] = MappingProxyType(
    {
        "feed": frozenset({"feed", "recommend", "trending"}),
        "search": frozenset({"search"}),
        "similar": frozenset({"similar"}),
        "bought_together": frozenset({"bought_together"}),
    }
)


def _frozen_map(m: Mapping[str, tuple[str, ...]] | None = None) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True, slots=True)
class QueryCondition:
    """The search query must equal, or contain every word of, ``text``.

    Both sides go through ``data.text.normalize`` first (traditional → simplified
    Chinese, lower case, width folding), so 連衣裙 matches 连衣裙 and "Dress" matches "dress".
    For ``contains``, Latin words match whole words and Chinese words match as substrings.
    """

    text: str
    match: QueryMatchMode = "equals"


@dataclass(frozen=True, slots=True)
class Condition:
    """When a rule fires. Every given part must hold; an empty part places no limit."""

    contexts: tuple[RuleContext, ...] = ()
    query: QueryCondition | None = None
    category: tuple[str, ...] | None = None
    """The request's category (browsing or search filter) must start with this path."""
    user_attributes: Mapping[str, tuple[str, ...]] = field(default_factory=_frozen_map)
    """Attribute name → allowed values, e.g. {"segment": ("vip",)}; values compare as text."""


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """Which items an action touches. Fields combine with AND; values in one field with OR."""

    item_ids: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    categories: tuple[tuple[str, ...], ...] = ()
    """Category path prefixes."""
    tags: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    new_arrival_days: int | None = None
    """Only items created at most this many days before the request."""
    in_stock: bool | None = None

    def is_empty(self) -> bool:
        return (
            not (self.item_ids or self.brands or self.categories or self.tags)
            and self.price_min is None
            and self.price_max is None
            and self.new_arrival_days is None
            and self.in_stock is None
        )

    def describe(self) -> str:
        parts: list[str] = []
        if self.item_ids:
            parts.append("items " + ", ".join(self.item_ids))
        if self.brands:
            parts.append("brand " + " | ".join(self.brands))
        if self.categories:
            parts.append("category " + " | ".join(" > ".join(c) for c in self.categories))
        if self.tags:
            parts.append("tag " + " | ".join(self.tags))
        if self.price_min is not None or self.price_max is not None:
            lo = "" if self.price_min is None else f"{self.price_min:g}"
            hi = "" if self.price_max is None else f"{self.price_max:g}"
            parts.append(f"price {lo}–{hi}")
        if self.new_arrival_days is not None:
            parts.append(f"new in {self.new_arrival_days}d")
        if self.in_stock is not None:
            parts.append("in stock" if self.in_stock else "out of stock")
        return ", ".join(parts) or "all items"


@dataclass(frozen=True, slots=True)
class Pin:
    item_id: str
    position: int
    """1-based slot."""


@dataclass(frozen=True, slots=True)
class PinAction:
    """Put these items at these slots, whether or not ranking found them."""

    pins: tuple[Pin, ...]
    kind: Literal["pin"] = "pin"


@dataclass(frozen=True, slots=True)
class BoostAction:
    """Raise (boost) or lower (bury) matching items.

    ``weight`` is relative to the spread of the list's scores: 1.0 adds (or, for bury,
    subtracts) the whole distance between the lowest and the highest score, which takes a
    matching item to the top (or bottom); 0.1 nudges it.
    """

    filter: ItemFilter
    weight: float
    kind: Literal["boost", "bury"] = "boost"


@dataclass(frozen=True, slots=True)
class HideAction:
    """Remove matching items from the list."""

    filter: ItemFilter
    kind: Literal["hide"] = "hide"


@dataclass(frozen=True, slots=True)
class FilterAction:
    """Keep only matching items (items pinned by an earlier rule stay)."""

    filter: ItemFilter
    kind: Literal["filter"] = "filter"


@dataclass(frozen=True, slots=True)
class RedirectAction:
    """Send a search to a category page or a URL instead of showing results."""

    category: tuple[str, ...] | None = None
    url: str | None = None
    kind: Literal["redirect"] = "redirect"


@dataclass(frozen=True, slots=True)
class RewriteAction:
    """Change the search query before it reaches the index.

    ``replace``: search for ``text`` instead of the query. ``synonyms``: also search for
    ``text`` (a one-way synonym: the original words still count).
    """

    text: str
    mode: Literal["replace", "synonyms"] = "replace"
    kind: Literal["rewrite"] = "rewrite"


ListAction = PinAction | BoostAction | HideAction | FilterAction
QueryAction = RedirectAction | RewriteAction
Action = ListAction | QueryAction


@dataclass(frozen=True, slots=True)
class Rule:
    rule_id: str
    name: str
    condition: Condition
    actions: tuple[Action, ...]
    priority: int = 0
    """Higher runs first; equal priorities run in rule-id order."""
    enabled: bool = True
    start: datetime | None = None
    end: datetime | None = None
    """Active from ``start`` (inclusive) until ``end`` (exclusive); UTC."""
    stop_processing: bool = False
    """When this rule fires, no later rule in the chain runs."""
    rule_set: str = DEFAULT_RULE_SET
    description: str = ""

    def is_active(self, now: datetime) -> bool:
        if not self.enabled:
            return False
        if self.start is not None and now < self.start:
            return False
        return not (self.end is not None and now >= self.end)

    @property
    def order_key(self) -> tuple[int, str]:
        return (-self.priority, self.rule_id)

    @property
    def pins(self) -> tuple[Pin, ...]:
        return tuple(p for a in self.actions if isinstance(a, PinAction) for p in a.pins)


def sort_rules(rules: list[Rule] | tuple[Rule, ...]) -> list[Rule]:
    """The documented order: priority (highest first), then rule id (ascending)."""
    return sorted(rules, key=lambda r: r.order_key)


def week_window(start: datetime, days: int = 7) -> tuple[datetime, datetime]:
    """A convenience for "for a week from now" windows."""
    return start, start + timedelta(days=days)
