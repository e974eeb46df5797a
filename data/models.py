"""The shop's data model: items, users and behavior events.

These are validated at every edge (files, HTTP). A bad value raises
``pydantic.ValidationError`` whose message names the field; `data.errors.describe`
turns it into one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

EventType = Literal[
    "impression",
    "view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "favorite",
    "purchase",
    "refund",
    "rate",
    "share",
    "search",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

INT32_MAX = 2**31 - 1
"""Positions, quantities and stock: stored as int32 columns, so larger values are refused."""
SAFE_INT = 2**53
"""Integer attribute values: exactly representable as JSON numbers and float64 columns."""
MAX_AMOUNT = 1e9
"""Prices, event values and numeric attributes: within what the float64 columns and the
search backends' numeric fields take without loss or overflow."""


def valid_unicode(value: str) -> str:
    """Refuse text that cannot be written as UTF-8 (a lone surrogate such as ``\\ud800``, which
    JSON can spell but no file, index or response can hold) and NUL characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


_STORED: ContextVar[bool] = ContextVar("stored_records", default=False)


@contextmanager
def stored_records() -> Iterator[None]:
    """Records built inside are read back from a store (or from a record that was): they were
    checked when they came in, and a check added since must not make them unreadable
    (:func:`valid_text_inside` lets them through)."""
    token = _STORED.set(True)
    try:
        yield
    finally:
        _STORED.reset(token)


def valid_text_inside(value: object) -> object:
    """:func:`valid_unicode` on every string of a value, keys and items of nested mappings and
    lists included: a field validator for specs whose fields nest free text (a rule's
    conditions, an experiment's audience). Not applied inside :func:`stored_records`."""
    if _STORED.get():
        return value
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            valid_unicode(v)
        elif isinstance(v, Mapping):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list | tuple | set | frozenset):
            stack.extend(v)
    return value


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


NOT_BOOL = BeforeValidator(_not_bool)
"""Refuses a boolean for a number. Bounds of an optional number go before it in the
``Annotated`` (``Annotated[float, Field(le=5), NOT_BOOL] | None``): after it, or on the optional,
they do not reach the JSON schema."""
Number = Annotated[float, NOT_BOOL]
"""A float field that refuses JSON booleans (which pydantic would otherwise read as 0/1)."""
Count = Annotated[int, NOT_BOOL]

Text = Annotated[str, AfterValidator(valid_unicode)]
"""A string that is valid Unicode (every free-text field of the data model)."""

Id = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[^\s/\\]+$"),
    AfterValidator(valid_unicode),
]
"""Ids are non-empty, at most 128 characters of valid Unicode, without whitespace or slashes."""


def _check_attribute(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -SAFE_INT <= value <= SAFE_INT:
        raise ValueError(f"integer attribute values must be within ±2^53, got {value}")
    if isinstance(value, float) and not -MAX_AMOUNT * 1e6 <= value <= MAX_AMOUNT * 1e6:
        raise ValueError("numeric attribute values must be finite and within ±1e15")
    if isinstance(value, str):
        valid_unicode(value)
    return value


AttributeValue = Annotated[
    str | int | float | bool, AfterValidator(_check_attribute)
]
AttributeKey = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(valid_unicode)]

CATEGORY_SEPARATOR = " > "


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    """Naive times are taken as UTC; every time must fall between 1970 and 2200."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not _EARLIEST <= value < _LATEST:
        raise ValueError("must be between 1970-01-01 and 2200-01-01")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Item(_Model):
    item_id: Id
    title: Text = Field(min_length=1, max_length=500)
    description: Text = Field(default="", max_length=20_000)
    category: tuple[Text, ...] = Field(
        default=(), description="Category path from the root, e.g. ['服裝', '女裝', '連衣裙']."
    )
    brand: Text | None = Field(default=None, max_length=200)
    price: Number = Field(ge=0, le=1e9, allow_inf_nan=False)
    currency: Text = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    tags: tuple[Text, ...] = ()
    attributes: dict[AttributeKey, AttributeValue] = Field(default_factory=dict)
    stock: Count = Field(default=0, ge=0, le=INT32_MAX)
    is_active: bool = True
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    merchant_id: Text | None = Field(default=None, max_length=128)
    rating: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False), NOT_BOOL] | None = None

    @field_validator("category", mode="before")
    @classmethod
    def _split_category(cls, v: object) -> object:
        if isinstance(v, str):
            parts = [p.strip() for p in v.replace("/", ">").split(">")]
            return tuple(p for p in parts if p)
        return v

    @field_validator("tags", mode="before")
    @classmethod
    def _split_tags(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(t.strip() for t in v.replace("|", ",").split(",") if t.strip())
        return v

    @field_validator("category", "tags")
    @classmethod
    def _no_empty_parts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() for p in v):
            raise ValueError("must not contain empty entries")
        return v

    @field_validator("created_at")
    @classmethod
    def _created_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @property
    def category_path(self) -> str:
        return CATEGORY_SEPARATOR.join(self.category)

    @property
    def in_stock(self) -> bool:
        return self.stock > 0


class User(_Model):
    user_id: Id
    attributes: dict[AttributeKey, AttributeValue] = Field(
        default_factory=dict, description="Free attributes such as region, tier, segment."
    )
    consent: bool = Field(
        default=True,
        description="Consent to personalization. Without it the user gets non-personalized "
        "results and their events are kept out of training.",
    )


class EventContext(_Model):
    session_id: Text | None = Field(default=None, max_length=128)
    query: Text | None = Field(default=None, max_length=500)
    position: Annotated[int, Field(ge=0, le=INT32_MAX), NOT_BOOL] | None = None
    request_id: Text | None = Field(default=None, max_length=128)
    experiment: Text | None = Field(default=None, max_length=128)
    variant: Text | None = Field(default=None, max_length=128)
    channel: Text | None = Field(default=None, max_length=64)
    device: Text | None = Field(default=None, max_length=64)
    surface: Text | None = Field(
        default=None,
        max_length=64,
        description="Where the item was shown: feed, search, similar, …",
    )


class Event(_Model):
    event_id: Id
    user_id: Id
    item_id: Id | None = None
    type: EventType
    timestamp: datetime
    value: Annotated[
        float, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT, allow_inf_nan=False), NOT_BOOL
    ] | None = (
        Field(default=None, description="Rating, quantity or price, by type.")
    )
    context: EventContext = Field(default_factory=EventContext)

    @field_validator("timestamp")
    @classmethod
    def _ts_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @model_validator(mode="after")
    def _check_type_fields(self) -> Event:
        if self.type == "search":
            if not (self.context.query and self.context.query.strip()):
                raise ValueError("context.query is required for a search event")
        elif self.item_id is None:
            raise ValueError(f"item_id is required for a {self.type} event")
        if self.type == "rate" and (self.value is None or not 0 <= self.value <= 5):
            raise ValueError("value must be a rating between 0 and 5 for a rate event")
        return self
