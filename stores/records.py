"""The plain records the stores take and return (frozen dataclasses), and their options.

They keep the shapes of the embedded code they replace: events are ``data.models.Event``
(``AppendResult`` is the event log's), users ``User``, items ``Item``; rules and experiments
are JSON documents (the ``RuleSpec`` / ``ExperimentSpec`` JSON the SQLite stores under
``state/`` hold), because their classes live in a layer above this one; served lists are
the request log's rows plus the items shown, in order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal

import orjson

from data.eventlog import AppendResult
from data.models import Item

__all__ = [
    "CHANGE_MAX_KEYS",
    "SERVED_COLUMNS",
    "TOPICS",
    "AppendResult",
    "CatalogChange",
    "CatalogChanges",
    "Change",
    "Document",
    "ServedList",
    "ShopperPolicy",
    "ShopperProfile",
    "StoreOptions",
    "Topic",
    "log_add",
]

Topic = Literal["users", "catalog", "rules", "experiments", "index"]
TOPICS: tuple[Topic, ...] = ("users", "catalog", "rules", "experiments")
CHANGE_MAX_KEYS = 100
"""A change of more ids than this is announced without ids ("anything may have changed")."""


@dataclass(frozen=True, slots=True)
class Change:
    """Something changed in a store a local cache may hold.

    ``keys`` are the ids that changed (users, items, rule or experiment ids), or None when a
    caller must assume anything of ``topic`` changed: a bulk change, or ``topic == "*"`` after
    the subscription lost its connection (changes may have been missed meanwhile).
    ``cursor`` is the catalog's cursor after the change (catalog changes only).
    """

    topic: Topic | Literal["*"]
    keys: tuple[str, ...] | None = None
    cursor: int | None = None


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """One item as of change ``seq``: its current version, or None once deleted."""

    seq: int
    item_id: str
    item: Item | None


@dataclass(frozen=True, slots=True)
class CatalogChanges:
    """A page of the catalog's change feed and the cursor to ask from next."""

    changes: tuple[CatalogChange, ...]
    cursor: int


@dataclass(frozen=True, slots=True)
class Document:
    """A rule or an experiment as stored: its id, a group (a rule's ``rule_set``, an
    experiment's ``status``), the JSON body (``RuleSpec`` / ``ExperimentSpec`` JSON) and
    times (UTC). ``created_at`` / ``updated_at`` are set by the store when left None."""

    doc_id: str
    group: str
    body: str
    created_at: datetime | None = None
    updated_at: datetime | None = None


SERVED_COLUMNS: tuple[str, ...] = ("request_id", "surface", "user_id", "experiment", "variant")
"""What reports read of a served list (``RequestLogStore.lookup_columns``)."""


@dataclass(frozen=True, slots=True)
class ServedList:
    """One served list: request id, time (UTC), surface, user, experiment and variant, query,
    anchor item, and the items shown — ``items[p]`` was shown at position ``p`` (0-based, as
    events' ``context.position``)."""

    request_id: str
    at: datetime
    surface: str
    user_id: str | None = None
    experiment: str | None = None
    variant: str | None = None
    query: str | None = None
    item_id: str | None = None
    items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ShopperProfile:
    """A shopper's hot state at one moment: recent ``(item_id, event type)``, newest first,
    and the items bought and not refunded."""

    recent: tuple[tuple[str, str], ...] = ()
    purchased: frozenset[str] = frozenset()


_HISTORY_TYPES = frozenset(
    {"view", "click", "add_to_cart", "favorite", "purchase", "share", "rate"}
)
_LIVE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"view": 1.0, "click": 1.0, "add_to_cart": 3.0, "favorite": 2.0, "purchase": 5.0, "share": 2.0}
)


@dataclass(frozen=True)
class ShopperPolicy:
    """What an event does to shopper state (the defaults are those of ``ranking.profile`` and
    ``ranking.live``): types that enter the recent history, live-count weights per type and
    their half-life, and the bounds."""

    history_size: int = 50
    """Recent history entries kept per user (newest first)."""
    history_types: frozenset[str] = _HISTORY_TYPES
    live_weights: Mapping[str, float] = field(default_factory=lambda: _LIVE_WEIGHTS)
    live_half_life_hours: float = 24.0
    live_max_items: int = 500_000
    """Items with live counts kept; beyond it the coldest are dropped."""
    idle_days: float = 90.0
    """A user's history and purchases are dropped after this long without an event."""

    @property
    def rate(self) -> float:
        """Decay rate per second: a count halves every ``live_half_life_hours``."""
        return math.log(2) / (self.live_half_life_hours * 3600.0)


@dataclass(frozen=True)
class StoreOptions:
    """Options every implementation honours (defaults match today's embedded settings)."""

    timeout_seconds: float = 1.0
    """Budget of one store call (connect and statement); a dead server is a
    ``StoreUnavailableError`` within it."""
    shopper: ShopperPolicy = field(default_factory=ShopperPolicy)
    feed_ttl_seconds: float = 900.0
    feed_max_entries: int = 20_000
    """Embedded feed pages kept at most (oldest dropped); Redis bounds them by TTL."""
    request_keep_days: int = 90
    """Days of request log kept; older day partitions are dropped by ``prune``."""
    search_keep_days: int = 90
    """Days of the search log kept (``prune``)."""
    served_keep_days: int = 30
    """Days of the learned ranker's served lists kept (``prune``)."""
    pool_size: int = 4
    """PostgreSQL connections kept open per process."""


def log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow: live counts are kept as logarithms of counts
    decayed to absolute time (``log(w) + rate * t``), so adding needs no shared epoch and
    never overflows, and ordering by the logarithm is ordering by the count at any moment."""
    if a < b:
        a, b = b, a
    if b == -math.inf:
        return a
    return a + math.log1p(math.exp(b - a))


LOG_NAMES = ("searches", "served")
"""The telemetry logs (``LogStore``): the search log and the learned ranker's served lists."""


def log_table(name: str) -> str:
    """The table of a telemetry log (the same name in SQLite and PostgreSQL)."""
    if name not in LOG_NAMES:
        raise ValueError(f"unknown log {name!r}; one of {LOG_NAMES}")
    return f"log_{name}"


def log_cutoff(keep_days: int, now: datetime | None = None) -> datetime:
    """Rows of a telemetry log older than this are pruned."""
    return (now or datetime.now(UTC)) - timedelta(days=keep_days)


@dataclass(frozen=True, slots=True)
class LogRow:
    """One row of a telemetry log (``LogStore``): what a request served, keyed by its id."""

    request_id: str
    at: datetime
    user_id: str | None
    body: Mapping[str, Any]
    """A JSON object; its ``query`` key is removed with the user id by an erasure."""


def json_text(value: object) -> str:
    """``value`` as compact JSON text. orjson writes it (a request's log rows are encoded on
    the request's thread, five times faster than the standard encoder); what orjson refuses
    (a lone surrogate, a non-string key, an integer beyond 64 bits) the standard encoder
    writes."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
