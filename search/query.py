"""The one search request every backend answers.

Filters and facets are typed objects; only a backend turns them into its query language.

Filter semantics (identical in every backend):

* filters on *different* fields are AND-ed; several filters on the *same* field are OR-ed
  (that is how a shopper ticks two price buckets or two brands);
* ``TermsFilter`` matches when the item has any of ``values`` (exact, case-sensitive, as
  stored: ``brand`` "優衣庫" is not "优衣库"); on ``category`` a value is a category path
  (``"服裝 > 女裝"``) and matches the item's path or any path below it;
* ``RangeFilter`` bounds are ``gte``/``gt``/``lte``/``lt``, at least one given;
* ``BoolFilter`` matches the boolean exactly (``in_stock`` means ``stock > 0``).

Multi-select facets: the hits are filtered by every filter; the counts of facet ``F`` are
computed with every filter *except* those on field ``F``. A term bucket is ``selected`` when
a ``TermsFilter`` on that field lists it; a range bucket when a ``RangeFilter`` on that field
has exactly the bucket's bounds (``gte=bucket.gte, lt=bucket.lt``).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from data.models import valid_unicode

MAX_PAGE_SIZE = 100
MAX_RESULT_WINDOW = 10_000
"""page × size may not exceed this (OpenSearch's default ``max_result_window``)."""
MAX_RERANK_DEPTH = 1_000

TermsField = Literal[
    "category", "category_l1", "category_l2", "category_l3", "brand", "tags", "merchant_id",
    "item_id",
]
RangeField = Literal["price", "rating", "stock"]
BoolField = Literal["in_stock", "is_active"]
TermsFacetField = Literal["category_l1", "category_l2", "category_l3", "brand", "tags", "merchant_id"]
RangeFacetField = Literal["price", "rating"]
SortMode = Literal["relevance", "price_asc", "price_desc", "newest", "popularity"]

TERMS_FIELDS: tuple[str, ...] = get_args(TermsField)
RANGE_FIELDS: tuple[str, ...] = get_args(RangeField)
BOOL_FIELDS: tuple[str, ...] = get_args(BoolField)
TERMS_FACET_FIELDS: tuple[str, ...] = get_args(TermsFacetField)
RANGE_FACET_FIELDS: tuple[str, ...] = get_args(RangeFacetField)
FACET_FIELDS: tuple[str, ...] = TERMS_FACET_FIELDS + RANGE_FACET_FIELDS
SORT_MODES: tuple[str, ...] = get_args(SortMode)


MAX_BOUND = 1e15
"""Range bounds are within ±1e15: exact in float64 and within int64 for the integer fields
(a bound such as -1e300 would overflow the backends' integer range queries)."""
Bound = Annotated[float, Field(ge=-MAX_BOUND, le=MAX_BOUND, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- filters


class TermsFilter(_Model):
    type: Literal["terms"] = "terms"
    field: TermsField
    values: tuple[Annotated[str, Field(min_length=1, max_length=500)], ...] = Field(
        min_length=1, max_length=1000
    )


class RangeFilter(_Model):
    type: Literal["range"] = "range"
    field: RangeField
    gte: Bound | None = None
    gt: Bound | None = None
    lte: Bound | None = None
    lt: Bound | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeFilter:
        if self.gte is None and self.gt is None and self.lte is None and self.lt is None:
            raise ValueError("give at least one of gte, gt, lte, lt")
        if self.gte is not None and self.gt is not None:
            raise ValueError("give gte or gt, not both")
        if self.lte is not None and self.lt is not None:
            raise ValueError("give lte or lt, not both")
        low = self.gte if self.gte is not None else self.gt
        high = self.lte if self.lte is not None else self.lt
        if low is not None and high is not None and low > high:
            raise ValueError(f"lower bound {low} is above upper bound {high}")
        return self

    def contains(self, value: float) -> bool:
        """Whether ``value`` is inside the range (the reference semantics for backends)."""
        return (
            (self.gte is None or value >= self.gte)
            and (self.gt is None or value > self.gt)
            and (self.lte is None or value <= self.lte)
            and (self.lt is None or value < self.lt)
        )


class BoolFilter(_Model):
    type: Literal["bool"] = "bool"
    field: BoolField
    value: bool


Filter = Annotated[TermsFilter | RangeFilter | BoolFilter, Field(discriminator="type")]


def _infer_filter_type(v: object) -> object:
    """Let callers omit ``type``: ``values`` → terms, ``value`` → bool, bounds → range."""
    if isinstance(v, dict) and "type" not in v:
        if "values" in v:
            return {"type": "terms", **v}
        if "value" in v:
            return {"type": "bool", **v}
        if any(k in v for k in ("gte", "gt", "lte", "lt")):
            return {"type": "range", **v}
    return v


# ---------------------------------------------------------------- facets


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


class RangeBucket(_Model):
    """A half-open bucket ``[gte, lt)``; a missing side is unbounded."""

    gte: Bound | None = None
    lt: Bound | None = None

    @model_validator(mode="after")
    def _check(self) -> RangeBucket:
        if self.gte is None and self.lt is None:
            raise ValueError("a bucket needs gte or lt")
        if self.gte is not None and self.lt is not None and self.gte >= self.lt:
            raise ValueError(f"gte {self.gte} must be below lt {self.lt}")
        return self

    @property
    def key(self) -> str:
        """``"100-200"``, ``"*-100"``, ``"500-*"``."""
        low = "*" if self.gte is None else _fmt(self.gte)
        high = "*" if self.lt is None else _fmt(self.lt)
        return f"{low}-{high}"

    def contains(self, value: float) -> bool:
        return (self.gte is None or value >= self.gte) and (self.lt is None or value < self.lt)

    def as_filter(self, field: RangeField) -> RangeFilter:
        return RangeFilter(field=field, gte=self.gte, lt=self.lt)


DEFAULT_PRICE_BUCKETS: tuple[RangeBucket, ...] = (
    RangeBucket(lt=100),
    RangeBucket(gte=100, lt=200),
    RangeBucket(gte=200, lt=500),
    RangeBucket(gte=500, lt=1000),
    RangeBucket(gte=1000),
)
DEFAULT_RATING_BUCKETS: tuple[RangeBucket, ...] = (
    RangeBucket(gte=4),
    RangeBucket(gte=3, lt=4),
    RangeBucket(lt=3),
)


class TermsFacet(_Model):
    kind: Literal["terms"] = "terms"
    field: TermsFacetField
    size: int = Field(default=10, ge=1, le=100)
    """At most this many values, by count descending then value ascending."""


class RangeFacet(_Model):
    kind: Literal["range"] = "range"
    field: RangeFacetField
    ranges: tuple[RangeBucket, ...] = Field(default=(), max_length=50)
    """Buckets in display order; empty means the defaults for the field."""

    @property
    def buckets(self) -> tuple[RangeBucket, ...]:
        if self.ranges:
            return self.ranges
        return DEFAULT_PRICE_BUCKETS if self.field == "price" else DEFAULT_RATING_BUCKETS


FacetSpec = Annotated[TermsFacet | RangeFacet, Field(discriminator="kind")]


def _facet_shorthand(v: object) -> object:
    """``"brand"`` → a terms facet, ``"price"`` → a range facet with default buckets."""
    if isinstance(v, str):
        if v in RANGE_FACET_FIELDS:
            return {"kind": "range", "field": v}
        if v in TERMS_FACET_FIELDS:
            return {"kind": "terms", "field": v}
        raise ValueError(f"unknown facet field {v!r}; allowed: {', '.join(FACET_FIELDS)}")
    if isinstance(v, dict) and "kind" not in v:
        field = v.get("field")
        return {"kind": "range" if field in RANGE_FACET_FIELDS or "ranges" in v else "terms", **v}
    return v


# ---------------------------------------------------------------- request


class SearchRequest(_Model):
    """One search. Build it with keywords (``SearchRequest(text="red dress", facets=["brand"])``)
    or validate JSON with ``SearchRequest.model_validate``."""

    text: str = Field(default="", max_length=500)
    """Free text; empty matches every item (browse a category with filters only)."""
    filters: tuple[Filter, ...] = Field(default=(), max_length=50)
    facets: tuple[FacetSpec, ...] = Field(default=(), max_length=20)
    sort: SortMode = "relevance"
    page: int = Field(default=1, ge=1)
    size: int = Field(default=10, ge=1, le=MAX_PAGE_SIZE)
    typo_tolerance: bool = True
    include_inactive: bool = False
    """By default items with ``is_active=False`` are never returned nor counted."""
    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    """Personalization happens above the backend (serving layer); backends ignore it."""
    rerank_depth: int | None = Field(default=None, ge=1, le=MAX_RERANK_DEPTH)
    """When set, the backend returns the top ``max(rerank_depth, page*size)`` hits from rank 0
    (``SearchResult.offset == 0``) so a caller can re-rank them and cut the page itself
    with `page_slice`."""

    @field_validator("filters", mode="before")
    @classmethod
    def _filters_before(cls, v: object) -> object:
        if isinstance(v, (list, tuple)):
            return [_infer_filter_type(f) for f in v]
        return v

    @field_validator("facets", mode="before")
    @classmethod
    def _facets_before(cls, v: object) -> object:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, (list, tuple)):
            return [_facet_shorthand(f) for f in v]
        return v

    @field_validator("facets")
    @classmethod
    def _unique_facets(cls, v: tuple[TermsFacet | RangeFacet, ...]) -> tuple[TermsFacet | RangeFacet, ...]:
        seen: set[str] = set()
        for f in v:
            if f.field in seen:
                raise ValueError(f"facet {f.field!r} requested twice")
            seen.add(f.field)
        return v

    @field_validator("text")
    @classmethod
    def _strip(cls, v: str) -> str:
        return valid_unicode(v).strip()  # what no store holds: the search log writes it

    @model_validator(mode="after")
    def _window(self) -> SearchRequest:
        if self.page * self.size > MAX_RESULT_WINDOW:
            raise ValueError(
                f"page: page × size must be at most {MAX_RESULT_WINDOW}; narrow the query instead"
            )
        return self

    # ---- helpers shared by backends

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size

    def window(self) -> tuple[int, int]:
        """``(start, count)`` of the hits a backend returns."""
        if self.rerank_depth is not None:
            return 0, max(self.rerank_depth, self.page * self.size)
        return self.offset, self.size

    def page_slice(self) -> slice:
        """The page's slice of a ranked list that starts at rank 0."""
        return slice(self.offset, self.offset + self.size)

    def filters_by_field(self, *, excluding: str | None = None) -> dict[str, list[TermsFilter | RangeFilter | BoolFilter]]:
        """Filters grouped by field (OR inside a group, AND across groups).

        ``excluding`` drops one field's group: the filters for that field's facet counts.
        Adds ``is_active = true`` unless ``include_inactive`` or an explicit ``is_active`` filter.
        """
        groups: dict[str, list[TermsFilter | RangeFilter | BoolFilter]] = {}
        for f in self.filters:
            groups.setdefault(f.field, []).append(f)
        if not self.include_inactive and "is_active" not in groups:
            groups["is_active"] = [BoolFilter(field="is_active", value=True)]
        if excluding is not None:
            groups.pop(excluding, None)
        return groups

    def selected_terms(self, field: str) -> set[str]:
        return {v for f in self.filters if isinstance(f, TermsFilter) and f.field == field for v in f.values}

    def selected_ranges(self, field: str) -> set[tuple[float | None, float | None]]:
        return {
            (f.gte, f.lt)
            for f in self.filters
            if isinstance(f, RangeFilter) and f.field == field and f.gt is None and f.lte is None
        }
