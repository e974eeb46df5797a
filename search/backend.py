"""The contract every search backend fulfils (embedded tantivy, OpenSearch).

Both backends index the same `search.document.SearchDocument` (built by
`search.document.to_document`) and answer a query from the same `search.analysis.QueryPlan`,
so Chinese/English analysis, synonyms and typo tolerance behave identically. The contract
tests in ``tests/search/`` check it.

Text matching (the reference semantics):

* Text fields hold *pre-tokenized* text (``data.text.tokens``); the engine must not
  analyse further (tantivy: ``PreTokenizedString``/whitespace; OpenSearch: a ``whitespace``
  analyzer over the space-joined tokens). Field weights: `TEXT_FIELDS`.
* A plan is a list of clauses; a clause is a list of alternatives; an alternative is a token
  sequence (one token → a term, several → an exact phrase, slop 0). A clause matches a field
  when any alternative does; it matches a document when it matches any text field. A document
  matches the text when at least ``plan.minimum_should_match`` clauses match. An empty plan
  matches every document.
* An alternative marked ``chars`` (one CJK character typed alone) is a term in the
  `CHAR_FIELDS` instead, which hold every CJK character of title and meta alone (weights as
  their text field): 裙 finds 連衣裙 and 半身裙.
* Scoring: for each (clause, field, alternative) that matches, BM25 of the term/phrase × the
  field weight × ``alternative.boost`` (1.0 typed, 0.8 synonym); summed. With
  ``typo_tolerance``, each alternative with a ``fuzzy_distance`` > 0
  also matches terms within that Levenshtein distance (transpositions cost 1, no prefix) in
  the `FUZZY_FIELDS`, scored as a constant ``FUZZY_SCORE × field weight × alternative.boost``.
* Category names: for each ``(key, boost)`` in ``plan.names`` equal to one of the document's
  `CATEGORY_NAME_FIELD` values, a constant ``CATEGORY_NAME_SCORE × boost`` is added (never
  needed to match). A query word that names what the item is (its category: 手機 for
  phones) so outranks the same word in a title that names something else (Phone Case), which
  BM25 alone ranks first when that title is shorter.
* Sorts: ``relevance`` (score desc), ``price_asc``, ``price_desc``, ``newest`` (created_at
  desc), ``popularity`` (desc). Ties are not ordered by contract.
* Filters and facets: see `search.query`. Facet value lists: see `search.result.SearchResult`.
* Highlights: ``search.highlight.highlight(title, plan)``.
* Suggestions (`SearchBackend.suggest`): candidates are brands, category names (every level)
  and titles of active items. A candidate matches when its ``analysis.normalize`` form starts
  with the normalized prefix. Order: brands, then categories, then titles; inside a kind by
  active item count desc, then normalized text asc, then text asc; at most ``size``.
  Empty (or blank) prefix → empty list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from data.models import Item
from search.analysis import QueryPlan
from search.query import SearchRequest
from search.result import SearchResult, Suggestion

TEXT_FIELDS: dict[str, float] = {"title": 3.0, "meta": 1.5, "description": 0.5}
"""Text field → weight. ``meta`` holds brand, category names and tags."""
FUZZY_FIELDS: tuple[str, ...] = ("title", "meta")
FUZZY_SCORE = 0.5
CHAR_FIELDS: dict[str, float] = {
    "title_chars": TEXT_FIELDS["title"],
    "meta_chars": TEXT_FIELDS["meta"],
}
"""Character field → weight: one CJK character typed alone is looked up here."""
CATEGORY_NAME_FIELD = "category_names"
CATEGORY_NAME_SCORE = 10.0
"""Added once per query key naming one of the item's categories (× the key's boost)."""

Progress = Callable[[int], None]
"""Called with the number of items just indexed (e.g. ``tqdm.update``)."""


@runtime_checkable
class SearchBackend(Protocol):
    """A product search index. Thread-safe for concurrent `search`/`suggest` calls while one
    writer indexes. Writes are visible to searches when the call returns."""

    name: str

    def index_items(
        self,
        items: Iterable[Item],
        *,
        popularity: Mapping[str, float] | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Add or replace items (same as `upsert`, streaming, for large catalogs).
        Returns the number indexed. Creates the index if needed."""
        ...

    def rebuild(
        self,
        items: Iterable[Item],
        *,
        popularity: Mapping[str, float] | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Replace the whole index with ``items`` atomically: build a new index aside, then
        swap (OpenSearch: alias; tantivy: a new directory + pointer). Searches running during
        the rebuild keep answering from the old index, never failing, never empty."""
        ...

    def upsert(
        self, items: Sequence[Item], *, popularity: Mapping[str, float] | None = None
    ) -> int:
        """Add or replace items. An item missing from ``popularity`` keeps its current
        popularity (0 for a new item)."""
        ...

    def delete(self, item_ids: Sequence[str]) -> int:
        """Remove items; unknown ids are ignored. Returns how many existed."""
        ...

    def update_fields(
        self,
        item_id: str,
        *,
        price: float | None = None,
        stock: int | None = None,
        is_active: bool | None = None,
        popularity: float | None = None,
    ) -> bool:
        """Partial update without re-sending the item. False when the item is unknown."""
        ...

    def search(self, request: SearchRequest, plan: QueryPlan | None = None) -> SearchResult:
        """Answer one request (see the module docstring for the semantics). ``plan``, when
        given, replaces the analyzer's plan of ``request.text`` (relaxed queries run this
        way: `search.engine.SearchEngine`)."""
        ...

    def suggest(self, prefix: str, size: int = 10) -> list[Suggestion]:
        """Autocomplete over brands, category names and titles."""
        ...

    def count(self) -> int:
        """Number of documents in the live index (active or not)."""
        ...

    def health(self) -> bool:
        """True when the backend can answer searches."""
        ...

    def close(self) -> None:
        """Release resources. Safe to call twice."""
        ...
