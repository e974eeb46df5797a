"""The JSON form of a rule (API bodies, rule files, the store) and its conversion to a Rule.

Example::

    {"id": "pin-dress", "name": "Pin our dress for 連衣裙", "priority": 10,
     "condition": {"contexts": ["search"], "query": {"text": "連衣裙", "match": "contains"}},
     "actions": [{"type": "pin", "pins": [{"item_id": "i123", "position": 1}]}]}

    {"id": "bury-acme", "name": "Bury ACME in the feed for a week",
     "start": "2025-01-01T00:00:00Z", "end": "2025-01-08T00:00:00Z",
     "condition": {"contexts": ["feed"]},
     "actions": [{"type": "bury", "filter": {"brands": ["ACME"]}, "weight": 1.0}]}
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from data.models import stored_records, valid_text_inside
from merch.rules.model import (
    DEFAULT_RULE_SET,
    Action,
    BoostAction,
    Condition,
    FilterAction,
    HideAction,
    ItemFilter,
    Pin,
    PinAction,
    QueryCondition,
    QueryMatchMode,
    RedirectAction,
    RewriteAction,
    Rule,
    RuleContext,
)

RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
RuleId = Annotated[str, Field(pattern=RULE_ID_PATTERN, description="Letters, digits, _ . -")]


def new_rule_id() -> str:
    return "r-" + secrets.token_hex(4)


def _category(v: object) -> object:
    if isinstance(v, str):
        parts = [p.strip() for p in re.split(r"[>/]", v)]
        return [p for p in parts if p]
    return v


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # free text anywhere in a spec (names, query texts, audiences): valid Unicode, no NUL
    _valid_text = field_validator("*")(valid_text_inside)


class QuerySpec(_Spec):
    text: str = Field(min_length=1, max_length=200)
    match: QueryMatchMode = "equals"


class ConditionSpec(_Spec):
    contexts: list[RuleContext] = Field(
        default_factory=list, description="feed, search, similar, bought_together; empty = all."
    )
    query: QuerySpec | None = None
    category: list[str] | None = Field(
        default=None, description="Category path prefix, as a list or 'A > B'."
    )
    user_attributes: dict[str, str | list[str]] = Field(
        default_factory=dict, description="e.g. {'segment': ['vip', 'gold']}"
    )

    @field_validator("category", mode="before")
    @classmethod
    def _split_category(cls, v: object) -> object:
        return _category(v)


class FilterSpec(_Spec):
    item_ids: list[str] = Field(default_factory=list)
    brands: list[str] = Field(default_factory=list)
    categories: list[list[str]] = Field(
        default_factory=list, description="Category path prefixes, each a list or 'A > B'."
    )
    tags: list[str] = Field(default_factory=list)
    price_min: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    price_max: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    new_arrival_days: int | None = Field(default=None, ge=1, le=3650)
    in_stock: bool | None = None

    @field_validator("categories", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return [_category(v)]
        if isinstance(v, list):
            return [_category(c) for c in v]
        return v

    def to_filter(self) -> ItemFilter:
        return ItemFilter(
            item_ids=tuple(self.item_ids),
            brands=tuple(self.brands),
            categories=tuple(tuple(c) for c in self.categories if c),
            tags=tuple(self.tags),
            price_min=self.price_min,
            price_max=self.price_max,
            new_arrival_days=self.new_arrival_days,
            in_stock=self.in_stock,
        )

    @classmethod
    def of(cls, f: ItemFilter) -> FilterSpec:
        return cls(
            item_ids=list(f.item_ids),
            brands=list(f.brands),
            categories=[list(c) for c in f.categories],
            tags=list(f.tags),
            price_min=f.price_min,
            price_max=f.price_max,
            new_arrival_days=f.new_arrival_days,
            in_stock=f.in_stock,
        )


class PinSpec(_Spec):
    item_id: str = Field(min_length=1, max_length=128)
    position: int = Field(ge=1, le=1000, description="1-based slot.")


class PinActionSpec(_Spec):
    type: Literal["pin"]
    pins: list[PinSpec] = Field(min_length=1)


class BoostActionSpec(_Spec):
    type: Literal["boost", "bury"]
    filter: FilterSpec
    weight: float = Field(
        default=0.5,
        gt=0,
        le=10,
        allow_inf_nan=False,
        description="Relative to the list's score spread: 1.0 moves a match to the top/bottom.",
    )


class HideActionSpec(_Spec):
    type: Literal["hide"]
    filter: FilterSpec


class FilterActionSpec(_Spec):
    type: Literal["filter"]
    filter: FilterSpec


class RedirectActionSpec(_Spec):
    type: Literal["redirect"]
    category: list[str] | None = None
    url: str | None = Field(default=None, max_length=2000)

    @field_validator("category", mode="before")
    @classmethod
    def _split_category(cls, v: object) -> object:
        return _category(v)


class RewriteActionSpec(_Spec):
    type: Literal["rewrite"]
    text: str = Field(min_length=1, max_length=200)
    mode: Literal["replace", "synonyms"] = "replace"


ActionSpec = Annotated[
    PinActionSpec
    | BoostActionSpec
    | HideActionSpec
    | FilterActionSpec
    | RedirectActionSpec
    | RewriteActionSpec,
    Field(discriminator="type"),
]


class RuleSpec(_Spec):
    """A rule as sent to the API or written in a rules file."""

    id: RuleId | None = Field(default=None, description="Generated when absent.")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first.")
    enabled: bool = True
    start: datetime | None = None
    end: datetime | None = None
    stop_processing: bool = False
    rule_set: str = Field(default=DEFAULT_RULE_SET, pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    condition: ConditionSpec = Field(default_factory=ConditionSpec)
    actions: list[ActionSpec] = Field(min_length=1)

    @field_validator("start", "end")
    @classmethod
    def _as_utc(cls, v: datetime | None) -> datetime | None:
        return _utc(v)

    def to_rule(self, rule_id: str | None = None) -> Rule:
        rid = rule_id or self.id or new_rule_id()
        c = self.condition
        condition = Condition(
            contexts=tuple(dict.fromkeys(c.contexts)),
            query=QueryCondition(c.query.text, c.query.match) if c.query else None,
            category=tuple(c.category) if c.category else None,
            user_attributes={
                k: tuple(v) if isinstance(v, list) else (v,) for k, v in c.user_attributes.items()
            },
        )
        return Rule(
            rule_id=rid,
            name=self.name,
            description=self.description,
            condition=condition,
            actions=tuple(_action(a) for a in self.actions),
            priority=self.priority,
            enabled=self.enabled,
            start=self.start,
            end=self.end,
            stop_processing=self.stop_processing,
            rule_set=self.rule_set,
        )

    @classmethod
    @stored_records()  # a rule held passed the checks when it came in
    def of(cls, rule: Rule) -> RuleSpec:
        c = rule.condition
        return cls(
            id=rule.rule_id,
            name=rule.name,
            description=rule.description,
            priority=rule.priority,
            enabled=rule.enabled,
            start=rule.start,
            end=rule.end,
            stop_processing=rule.stop_processing,
            rule_set=rule.rule_set,
            condition=ConditionSpec(
                contexts=list(c.contexts),
                query=QuerySpec(text=c.query.text, match=c.query.match) if c.query else None,
                category=list(c.category) if c.category else None,
                user_attributes={k: list(v) for k, v in c.user_attributes.items()},
            ),
            actions=[_action_spec(a) for a in rule.actions],
        )


def _action(a: object) -> Action:
    if isinstance(a, PinActionSpec):
        return PinAction(pins=tuple(Pin(p.item_id, p.position) for p in a.pins))
    if isinstance(a, BoostActionSpec):
        return BoostAction(filter=a.filter.to_filter(), weight=a.weight, kind=a.type)
    if isinstance(a, HideActionSpec):
        return HideAction(filter=a.filter.to_filter())
    if isinstance(a, FilterActionSpec):
        return FilterAction(filter=a.filter.to_filter())
    if isinstance(a, RedirectActionSpec):
        return RedirectAction(category=tuple(a.category) if a.category else None, url=a.url)
    if isinstance(a, RewriteActionSpec):
        return RewriteAction(text=a.text, mode=a.mode)
    raise TypeError(f"unknown action spec {type(a).__name__}")


def _action_spec(a: Action) -> ActionSpec:
    if isinstance(a, PinAction):
        return PinActionSpec(
            type="pin", pins=[PinSpec(item_id=p.item_id, position=p.position) for p in a.pins]
        )
    if isinstance(a, BoostAction):
        return BoostActionSpec(type=a.kind, filter=FilterSpec.of(a.filter), weight=a.weight)
    if isinstance(a, HideAction):
        return HideActionSpec(type="hide", filter=FilterSpec.of(a.filter))
    if isinstance(a, FilterAction):
        return FilterActionSpec(type="filter", filter=FilterSpec.of(a.filter))
    if isinstance(a, RedirectAction):
        return RedirectActionSpec(
            type="redirect", category=list(a.category) if a.category else None, url=a.url
        )
    return RewriteActionSpec(type="rewrite", text=a.text, mode=a.mode)
