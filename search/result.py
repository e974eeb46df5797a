"""The one search result every backend returns."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, computed_field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchHit(_Model):
    item_id: str
    score: float
    """The backend's lexical score (BM25-like) under ``sort="relevance"``; 0.0 for other sorts."""
    title: str
    """The title as stored (original script)."""
    brand: str | None = None
    category: tuple[str, ...] = ()
    price: float = 0.0
    currency: str = "CNY"
    stock: int = 0
    rating: float | None = None
    popularity: float = 0.0

    _highlight: Callable[[str], str] | None = PrivateAttr(default=None)
    _highlighted: str | None = PrivateAttr(default=None)

    @classmethod
    def build(cls, highlight: Callable[[str], str] | None, **fields: Any) -> SearchHit:
        """A hit from a backend's fields, highlighted on first use: a caller that re-ranks
        many hits and shows a page only pays for the page."""
        hit = cls.model_validate(fields)
        hit.__pydantic_private__["_highlight"] = highlight  # type: ignore[index]  # (fast path)
        return hit

    @computed_field  # type: ignore[prop-decorator]
    @property
    def highlighted_title(self) -> str:
        """The title, HTML-escaped, with matched parts wrapped in ``<em>…</em>``
        (made by `search.highlight.Highlighter`, identical in every backend)."""
        private: dict[str, Any] = self.__pydantic_private__  # type: ignore[assignment]
        got = private["_highlighted"]
        if got is None:
            hl = private["_highlight"]
            got = hl(self.title) if hl is not None else html.escape(self.title)
            private["_highlighted"] = got
        return got

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchHit):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash((self.item_id, self.score, self.title))


class FacetValue(_Model):
    value: str
    """The term as stored, or a range bucket key such as ``"100-200"``."""
    count: int
    selected: bool = False
    gte: float | None = None
    """Lower bound of a range bucket (inclusive); None for terms or an open bucket."""
    lt: float | None = None
    """Upper bound of a range bucket (exclusive); None for terms or an open bucket."""


class Relaxation(_Model):
    """How a query that found too little was loosened (`search.relax`)."""

    steps: tuple[str, ...]
    """The steps taken, in order: ``spelling``, ``drop_unknown``, ``drop_brand_colour``,
    ``any_word``."""
    dropped: tuple[str, ...] = ()
    """Query words no longer required (normalized)."""
    corrected: dict[str, str] = Field(default_factory=dict)
    """Typed word → the catalog's word used instead."""
    query: str = ""
    """The words the relaxed query required (normalized; with ``any_word``, any of them)."""


class SearchResult(_Model):
    hits: list[SearchHit]
    total: int
    """Number of items matching text and every filter."""
    offset: int = 0
    """Rank of the first hit (``(page-1)*size``, or 0 when ``rerank_depth`` was set)."""
    facets: dict[str, list[FacetValue]] = Field(default_factory=dict)
    """Requested facet field → values. Terms: by count desc, then value asc, zero counts
    omitted (selected values are always listed, even at 0). Ranges: every bucket in the
    requested order, zero counts included."""
    took_ms: float = 0.0
    backend: str = ""
    relaxation: Relaxation | None = None
    """Set when the strict query found too little and a relaxed one answered."""
    suggestion: str | None = None
    """"Did you mean": the text with words absent from the catalog replaced by the
    catalog's nearest words (None when every word is known or nothing is near)."""
    price_filter: dict[str, float] | None = None
    """Price bounds read from the text (``500元以下`` → ``{"lte": 500}``), applied as a filter."""
    dense_hits: int = 0
    """Hits that lexical matching did not find, added by the dense lists (text vectors,
    behaviour vectors and clicked items: `search.engine`)."""


class Suggestion(_Model):
    text: str
    """What to show (original script), e.g. a brand, a category name or a title."""
    kind: str
    """``"brand"``, ``"category"`` or ``"title"``."""
    count: int = 1
    """Number of active items behind it."""
