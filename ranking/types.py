"""Types shared by every stage of online ranking (candidates → score → rules → diversity → explain).

A ranked list is a ``list[ScoredItem]``. Each stage returns a new list; items are frozen and
changed with :meth:`ScoredItem.replace`, so a stage never mutates what another stage holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, overload

Surface = Literal["feed", "recommend", "search", "similar", "bought_together", "trending"]

ReasonSource = Literal[
    "cf",  # collaborative filtering for a known user
    "history",  # similar to items in the user's recent history
    "content",  # content similarity (cold items)
    "similar",  # item-to-item similarity for a given item
    "bought_together",
    "trending",
    "new_arrival",
    "promoted",
    "popular",  # fallback
    "search",  # lexical search hit
    "personalization",  # search re-ranking by user affinity
    "rule",  # a merchandising rule changed this item
    "experiment",
]


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an item is in a list, readable by a person and by code."""

    source: ReasonSource
    detail: str = ""
    model_version: str | None = None
    rule_id: str | None = None
    related_item_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"source": self.source}
        for k in ("detail", "model_version", "rule_id", "related_item_id"):
            v = getattr(self, k)
            if v not in (None, ""):
                out[k] = v
        return out


def _frozen(m: Mapping[str, float] | None = None) -> Mapping[str, float]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True, slots=True)
class ScoredItem:
    item_id: str
    score: float
    reasons: tuple[Reason, ...] = ()
    breakdown: Mapping[str, float] = field(default_factory=_frozen)
    """Named score components (e.g. {"cf": 0.8, "trending": 0.1, "rule:r12": 2.0}) for
    debug=true."""

    def replace(self, **changes: object) -> ScoredItem:
        if "breakdown" in changes:
            changes["breakdown"] = _frozen(changes["breakdown"])  # type: ignore[arg-type]
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def with_reason(self, reason: Reason) -> ScoredItem:
        return self.replace(reasons=(*self.reasons, reason))

    def with_component(self, name: str, value: float) -> ScoredItem:
        """Add a score component: the score grows by `value` and the breakdown records it."""
        bd = dict(self.breakdown)
        bd[name] = bd.get(name, 0.0) + value
        return self.replace(score=self.score + value, breakdown=bd)


@dataclass(frozen=True, slots=True)
class RankContext:
    """What a ranking request is about; rules match their conditions against it."""

    surface: Surface
    user_id: str | None = None
    user_attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    query: str | None = None
    category: tuple[str, ...] | None = None
    item_id: str | None = None  # the anchor item for similar / bought_together
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    experiment: str | None = None
    variant: str | None = None
    request_id: str | None = None


class LazyItems(Sequence[ScoredItem]):
    """A ranked list whose items are built when first read (``build(position)``), for the
    long lists of which a request shows a page. A slice is a list of built items."""

    __slots__ = ("_build", "_built")

    def __init__(self, n: int, build: Callable[[int], ScoredItem] | None = None) -> None:
        self._build = build
        self._built: list[ScoredItem | None] = [None] * n

    def _make(self, p: int) -> ScoredItem:
        """The item at ``p`` (a subclass may build it itself instead of taking ``build``)."""
        assert self._build is not None
        return self._build(p)

    def __len__(self) -> int:
        return len(self._built)

    @overload
    def __getitem__(self, k: int) -> ScoredItem: ...

    @overload
    def __getitem__(self, k: slice) -> list[ScoredItem]: ...

    def __getitem__(self, k: int | slice) -> ScoredItem | list[ScoredItem]:
        n = len(self._built)
        if isinstance(k, slice):
            return [self._item(p) for p in range(*k.indices(n))]
        if not -n <= k < n:
            raise IndexError("item index out of range")
        return self._item(k % n)

    def __iter__(self) -> Iterator[ScoredItem]:
        for p in range(len(self._built)):
            yield self._item(p)

    def _item(self, p: int) -> ScoredItem:
        it = self._built[p]
        if it is None:
            it = self._built[p] = self._make(p)
        return it

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"
