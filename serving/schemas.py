"""API schemas: separate input (``…In``) and output (``…Out``) models per resource.

Inputs forbid unknown fields, so a typo in a field name is a 422 that names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from data.models import AttributeValue, Event, Item

MAX_BATCH = 1000


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ ranked items


class ReasonOut(_Out):
    source: str = Field(examples=["history"])
    detail: str | None = Field(default=None, examples=["similar to an item you viewed"])
    model_version: str | None = Field(default=None, examples=["20250101-120000"])
    rule_id: str | None = None
    related_item_id: str | None = Field(default=None, examples=["i00042"])


class RankedItemOut(_Out):
    item_id: str = Field(examples=["i00017"])
    score: float = Field(examples=[0.93])
    title: str = Field(examples=["碎花連衣裙 Floral midi dress"])
    brand: str | None = None
    category: list[str] = Field(default_factory=list, examples=[["服裝", "女裝", "連衣裙"]])
    price: float = Field(examples=[299.0])
    currency: str = "CNY"
    in_stock: bool = True
    reasons: list[ReasonOut]
    breakdown: dict[str, float] | None = Field(
        default=None, description="Score components; only with debug=true."
    )


class _RankedListOut(_Out):
    request_id: str = Field(description="Echo it in events (context.request_id) for attribution.")
    strategy: str = Field(
        description="How the list was made: personalized, history, trending, non_personalized, "
        "similar, bought_together or none.",
        examples=["personalized"],
    )
    model_versions: dict[str, str] = Field(
        default_factory=dict, examples=[{"als": "20250101-120000"}]
    )
    experiment: str | None = None
    variant: str | None = None
    items: list[RankedItemOut]


class RecommendationsOut(_RankedListOut):
    user_id: str | None = None


class FeedOut(_RankedListOut):
    user_id: str | None = None
    page: int
    size: int
    has_more: bool


class ItemListOut(_RankedListOut):
    item_id: str


class TrendingOut(_RankedListOut):
    category: list[str] | None = None


# ------------------------------------------------------------------ search


class SearchHitOut(RankedItemOut):
    highlighted_title: str = Field(examples=["<em>連衣裙</em> midi"])
    lexical_score: float


class FacetValueOut(_Out):
    value: str
    count: int
    selected: bool = False
    gte: float | None = None
    lt: float | None = None


class RelaxationOut(_Out):
    steps: list[str] = Field(
        description="spelling, drop_unknown, drop_brand_colour, any_word (in order)."
    )
    dropped: list[str] = Field(default_factory=list, description="Query words no longer required.")
    corrected: dict[str, str] = Field(
        default_factory=dict, description="Typed word → catalog word."
    )
    query: str = Field(default="", description="The words the relaxed query required.")


class SearchOut(_Out):
    request_id: str
    query: str
    relaxed: bool = Field(
        default=False, description="The strict query found nothing; a relaxed one answered."
    )
    relaxation: RelaxationOut | None = None
    suggestion: str | None = Field(
        default=None, description="Did you mean: the query in the catalog's words."
    )
    price_filter: dict[str, float] | None = Field(
        default=None, description="Price bounds read from the query text (500元以下 → lte 500)."
    )
    rewritten_query: str | None = Field(
        default=None, description="Set when a rule rewrote the query."
    )
    redirect: str | None = Field(default=None, description="Set when a rule redirects this query.")
    total: int
    page: int
    size: int
    personalized: bool
    backend: str
    took_ms: float
    experiment: str | None = None
    variant: str | None = None
    hits: list[SearchHitOut]
    facets: dict[str, list[FacetValueOut]] = Field(default_factory=dict)


class SuggestionOut(_Out):
    text: str
    kind: str
    count: int


class AutocompleteOut(_Out):
    request_id: str
    prefix: str
    suggestions: list[SuggestionOut]


# ------------------------------------------------------------------ events

_EVENT_EXAMPLE = {
    "event_id": "e-7f3a9c",
    "user_id": "u00001",
    "item_id": "i00042",
    "type": "view",
    "timestamp": "2025-01-01T12:00:00Z",
    "context": {"request_id": "r-1234", "surface": "feed", "position": 3},
}


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` written in place (a schema embedded in another one cannot
    keep references to its own definitions)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)  # type: ignore[no-any-return]


RawEvent = Annotated[dict[str, Any], WithJsonSchema(_inlined(Event.model_json_schema()))]
"""An event as sent: documented as the Event schema, validated one by one by the route."""


class EventsIn(_In):
    events: list[RawEvent] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Each event is validated on its own (see the Event schema of data.models): "
        "a bad one is rejected with its index, the good ones are kept.",
        examples=[[_EVENT_EXAMPLE]],
    )


class RejectedEventOut(_Out):
    index: int
    event_id: str | None = None
    field: str | None = None
    reason: str


class EventsOut(_Out):
    request_id: str
    accepted: int = Field(description="New events durably written to the event log.")
    duplicates: int = Field(description="Events whose event_id was already accepted (ignored).")
    rejected: list[RejectedEventOut]


# ------------------------------------------------------------------ catalog


class ItemsUpsertIn(_In):
    items: list[Item] = Field(min_length=1, max_length=MAX_BATCH)


class ItemsUpsertOut(_Out):
    request_id: str
    upserted: int
    indexed: bool = Field(description="Whether the search index was updated too.")
    index_pending: int = Field(
        default=0,
        description="Catalog changes waiting for an unreachable search index; they "
        "are retried in the background until it has them (0 when indexed).",
    )


class ItemOut(_Out):
    item_id: str
    title: str
    description: str
    category: list[str]
    brand: str | None
    price: float
    currency: str
    tags: list[str]
    attributes: dict[str, AttributeValue]
    stock: int
    is_active: bool
    created_at: datetime
    merchant_id: str | None
    rating: float | None
    recommendable: bool


class DeletedOut(_Out):
    request_id: str
    deleted: bool


# ------------------------------------------------------------------ users


class UserIn(_In):
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict, examples=[{"region": "TW", "tier": "gold", "segment": "fashion"}]
    )
    consent: bool = Field(default=True, description="Consent to personalization.")


class UserOut(_Out):
    user_id: str
    attributes: dict[str, AttributeValue]
    consent: bool
    recent_items: list[str]
    top_categories: list[str]


class UserErasedOut(_Out):
    request_id: str
    user_id: str
    events_erased: int = Field(description="The user's events removed from the event log.")
    profile_erased: bool = Field(description="Whether the user had a profile.")
    shop_file_records_erased: int = Field(
        default=0,
        description="The user's lines of the shop's users file and events of its events "
        "file (what the shop was loaded from), removed from those files.",
    )
    served_requests_anonymized: int = Field(
        default=0,
        description="Requests served to the user, kept for the experiments' counts "
        "without the user id and the query.",
    )
    cached_feeds_dropped: int = Field(
        default=0, description="Feed pages kept for the user, dropped."
    )


# ------------------------------------------------------------------ models


class ModelVersionOut(_Out):
    version: str
    current: bool
    serving: bool
    created_at: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelOut(_Out):
    name: str
    current_version: str | None
    serving_version: str | None
    versions: list[ModelVersionOut]


class ModelsOut(_Out):
    request_id: str
    models: list[ModelOut]


class PromoteIn(_In):
    version: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/\\]+$")]


class ModelChangeOut(_Out):
    request_id: str
    name: str
    current_version: str | None
    serving: dict[str, str]


class ReloadOut(_Out):
    request_id: str
    changed: bool
    serving: dict[str, str]


# ------------------------------------------------------------------ ops


class HealthOut(_Out):
    status: Literal["ok"]


class ReadyOut(_Out):
    ready: bool
    checks: dict[str, bool]
    models: dict[str, str]
