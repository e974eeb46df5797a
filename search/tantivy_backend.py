"""The embedded search backend: a tantivy index on disk, no server.

Layout under ``root``: one directory per generation and a ``CURRENT`` file naming the live one
(`search.tantivy_generations`). `TantivyBackend.rebuild` writes a new generation and then
replaces ``CURRENT`` atomically; searchers (in this process, or another one such as the API
server, which re-reads ``CURRENT`` when it changes) move to it on their next call.

Only this module and its parts import tantivy: `search.tantivy_generations` (the generations
on disk), `search.tantivy_schema` (fields, documents), `search.tantivy_query` (plans and
filters → queries, fuzzy vocabulary) and `search.tantivy_facets` (aggregations).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.models import Item
from data.text import normalize
from search.analysis import Analyzer, QueryPlan, default_analyzer
from search.backend import (
    Progress,
)
from search.document import to_document
from search.errors import IndexNotFoundError, SearchError
from search.highlight import Highlighter
from search.memo import StateMemo
from search.query import SearchRequest
from search.result import FacetValue, SearchHit, SearchResult, Suggestion
from search.tantivy_facets import FACET_CACHE_SIZE, Facets, compute_facets
from search.tantivy_generations import Generation, Generations
from search.tantivy_query import QueryBuilder, Vocabulary, read_vocabulary
from search.tantivy_schema import (
    SUGGEST_KINDS,
    SUGGEST_SEP,
    schema,
    to_tantivy,
)

if TYPE_CHECKING:
    import tantivy

log = logging.getLogger(__name__)

_WRITER_HEAP = 128_000_000


class TantivyBackend:
    """A `search.backend.SearchBackend` over a tantivy index in ``root``."""

    name = "embedded"

    def __init__(
        self,
        root: Path | str,
        *,
        analyzer: Analyzer | None = None,
        facet_cache_size: int = FACET_CACHE_SIZE,
    ) -> None:
        self.root = Path(root)
        self.analyzer = analyzer or default_analyzer()
        self._schema = schema()
        self._queries = QueryBuilder(self._schema)
        self._gens = Generations(self.root, self._schema)
        self._write_lock = threading.Lock()
        self._vocab_lock = threading.Lock()
        # facet counts and totals per text + filters, for one index state (no expiry: the
        # state moves with every commit seen, here or in another process)
        self._facet_cache: StateMemo[Facets] = StateMemo(facet_cache_size, math.inf)
        self.facet_cache_size = facet_cache_size

    # ------------------------------------------------------------ generations

    def generation(self) -> str:
        """The live generation's name (changes with every `rebuild`)."""
        return self._gens.live().name

    def state(self) -> str:
        """The live generation and its commit version: changes with every write, by this
        process or another (what caches of search outcomes key on)."""
        gen = self._gens.live()
        return f"{gen.name}:{self._gens.version(gen)}"

    # ------------------------------------------------------------ writing

    def _add(
        self,
        writer: tantivy.IndexWriter,
        items: Iterable[Item],
        popularity: Mapping[str, float] | None,
        keep: Mapping[str, float],
        progress: Progress | None,
        *,
        replace: bool,
    ) -> int:
        n = 0
        batch = 0
        for item in items:
            pop = (popularity or {}).get(item.item_id, keep.get(item.item_id, 0.0))
            if replace:
                writer.delete_documents_by_term("item_id", item.item_id)
            source = item.model_dump_json().encode()
            writer.add_document(to_tantivy(to_document(item, pop), source))
            n += 1
            batch += 1
            if progress is not None and batch >= 1000:
                progress(batch)
                batch = 0
        if progress is not None and batch:
            progress(batch)
        return n

    def _commit(self, gen: Generation, writer: tantivy.IndexWriter) -> None:
        writer.commit()
        writer.wait_merging_threads()
        gen.index.reload()

    def _writer(self, gen: Generation) -> tantivy.IndexWriter:
        try:
            return gen.index.writer(_WRITER_HEAP, 1)
        except ValueError as exc:
            raise SearchError(
                f"cannot write the search index in {self.root}: {exc}; "
                "another process is writing it, wait for it to finish"
            ) from exc

    def _popularity_of(self, gen: Generation, item_ids: Sequence[str]) -> dict[str, float]:
        import tantivy

        if not item_ids:
            return {}
        searcher = gen.index.searcher()
        q = tantivy.Query.term_set_query(self._schema, "item_id", list(item_ids))
        hits = searcher.search(q, limit=max(1, len(item_ids)), count=False).hits
        addrs = [a for _, a in hits]
        pops = searcher.fast_field_values("popularity", addrs)
        ids = [searcher.doc(a).get_first("item_id") for a in addrs]
        return {i: float(p or 0.0) for i, p in zip(ids, pops, strict=True)}

    def index_items(
        self,
        items: Iterable[Item],
        *,
        popularity: Mapping[str, float] | None = None,
        progress: Progress | None = None,
    ) -> int:
        with self._write_lock:
            gen = self._gens.live(create=True)
            writer = self._writer(gen)
            try:
                n = self._add(writer, items, popularity, {}, progress, replace=True)
            except BaseException:
                writer.rollback()
                writer.wait_merging_threads()
                raise
            self._commit(gen, writer)
            return n

    def rebuild(
        self,
        items: Iterable[Item],
        *,
        popularity: Mapping[str, float] | None = None,
        progress: Progress | None = None,
    ) -> int:
        with self._write_lock:
            previous = self._gens.current_name()
            gen = self._gens.create()
            try:
                writer = self._writer(gen)
                n = self._add(writer, items, popularity, {}, progress, replace=False)
                self._commit(gen, writer)
            except BaseException:
                self._gens.discard(gen.name)
                raise
            self._gens.publish(gen, previous=previous)
            log.info("search index rebuilt: %d items in %s", n, self.root / gen.name)
            return n

    def upsert(self, items: Sequence[Item], *, popularity: Mapping[str, float] | None = None) -> int:
        with self._write_lock:
            gen = self._gens.live(create=True)
            missing = [i.item_id for i in items if not popularity or i.item_id not in popularity]
            keep = self._popularity_of(gen, missing)
            writer = self._writer(gen)
            n = self._add(writer, items, popularity, keep, None, replace=True)
            self._commit(gen, writer)
            return n

    def delete(self, item_ids: Sequence[str]) -> int:
        import tantivy

        with self._write_lock:
            gen = self._gens.live(create=True)
            q = tantivy.Query.term_set_query(self._schema, "item_id", list(item_ids))
            existing = gen.index.searcher().search(q, limit=1, count=True).count if item_ids else 0
            if not existing:
                return 0
            writer = self._writer(gen)
            for i in item_ids:
                writer.delete_documents_by_term("item_id", i)
            self._commit(gen, writer)
            return int(existing)

    def update_fields(
        self,
        item_id: str,
        *,
        price: float | None = None,
        stock: int | None = None,
        is_active: bool | None = None,
        popularity: float | None = None,
    ) -> bool:
        import tantivy

        with self._write_lock:
            gen = self._gens.live(create=True)
            searcher = gen.index.searcher()
            q = tantivy.Query.term_query(self._schema, "item_id", item_id)
            hits = searcher.search(q, limit=1, count=False).hits
            if not hits:
                return False
            addr = hits[0][1]
            item = Item.model_validate_json(searcher.doc(addr).get_first("source"))
            pop = popularity
            if pop is None:
                pop = float(searcher.fast_field_values("popularity", [addr])[0] or 0.0)
            changes = {
                k: v
                for k, v in (("price", price), ("stock", stock), ("is_active", is_active))
                if v is not None
            }
            item = Item.model_validate({**item.model_dump(), **changes})
            writer = self._writer(gen)
            self._add(writer, [item], {item_id: pop}, {}, None, replace=True)
            self._commit(gen, writer)
            return True

    # ------------------------------------------------------------ reading

    def count(self) -> int:
        try:
            gen = self._gens.live()
            self._gens.version(gen)
            return int(gen.index.searcher().num_docs)
        except IndexNotFoundError:
            return 0

    def health(self) -> bool:
        try:
            self._gens.live().index.searcher()
        except SearchError:
            return False
        return True

    def close(self) -> None:
        self._gens.close()

    # -- query building

    def _vocabulary(
        self, gen: Generation, searcher: tantivy.Searcher, version: int
    ) -> Vocabulary:
        """The generation's fuzzy vocabulary for index state ``version`` (read once per state)."""
        vocab = gen.vocabulary
        if vocab is not None and vocab.version == version:
            return vocab
        with self._vocab_lock:
            vocab = gen.vocabulary
            if vocab is not None and vocab.version == version:
                return vocab
            gen.vocabulary = read_vocabulary(searcher, version, vocab)
            return gen.vocabulary

    # -- search

    def search(self, request: SearchRequest, plan: QueryPlan | None = None) -> SearchResult:
        import tantivy

        t0 = time.perf_counter()
        gen = self._gens.live()
        version = self._gens.version(gen)
        searcher = gen.index.searcher()
        if plan is None:
            plan = self.analyzer.plan(request.text, typo_tolerance=request.typo_tolerance)
        vocab = self._vocabulary(gen, searcher, version) if plan.fuzzy_tokens() else None
        text_q = self._queries.text_query(plan, vocab)
        query = self._queries.query(text_q, request.filters_by_field())
        start, count = request.window()
        order_field, order = _SORTS[request.sort]
        # With facets, the shared aggregation over the full query also counts the hits, so
        # the top-k search can skip counting (much faster for broad queries).
        facets: dict[str, list[FacetValue]] = {}
        total: int | None = None
        if request.facets:
            key = (plan, request.filters, request.facets, request.include_inactive)
            got = self._facet_cache.get((gen.name, version), key)
            if got is None:
                got = compute_facets(searcher, request, text_q, query, self._queries)
                self._facet_cache.put((gen.name, version), key, got)
            facets, total = got
        kwargs: dict[str, Any] = {"limit": count, "count": total is None, "offset": start}
        if order_field is not None:
            kwargs["order_by_field"] = order_field
            kwargs["order"] = tantivy.Order.Asc if order == "asc" else tantivy.Order.Desc
        found: list[tuple[Any, Any]] = []
        if total is None or start < total:  # the aggregation counted nothing on this page
            res = searcher.search(query, **kwargs)
            found = res.hits
            if total is None:
                total = int(res.count or 0)
        addrs = [a for _, a in found]
        pops = searcher.fast_field_values("popularity", addrs) if addrs else []
        hl = Highlighter(plan)
        hits = []
        for (key, addr), pop in zip(found, pops, strict=True):
            src = json.loads(searcher.doc(addr).get_first("source"))
            score = float(key) if order_field is None else 0.0
            hits.append(_hit(src, score, float(pop or 0.0), hl))
        return SearchResult(
            hits=hits,
            total=total,
            offset=start,
            facets=facets,
            took_ms=(time.perf_counter() - t0) * 1000,
            backend=self.name,
        )

    def suggest(self, prefix: str, size: int = 10) -> list[Suggestion]:
        import tantivy

        p = normalize(prefix).strip()
        if not p or size < 1:
            return []
        gen = self._gens.live()
        self._gens.version(gen)
        searcher = gen.index.searcher()
        active = tantivy.Query.term_query(self._schema, "is_active", True)
        out: list[Suggestion] = []
        for kind in SUGGEST_KINDS:
            if len(out) >= size:
                break
            terms = searcher.terms_with_prefix(
                "suggest", f"{kind}:{p}", filter_query=active, limit=size - len(out)
            )
            for term, n in terms:
                if n <= 0:
                    continue
                text = term.split(SUGGEST_SEP, 1)[1]
                out.append(Suggestion(text=text, kind=kind, count=int(n)))
        return out[:size]


# ---------------------------------------------------------------- helpers

_SORTS: dict[str, tuple[str | None, str]] = {
    "relevance": (None, "desc"),
    "price_asc": ("price", "asc"),
    "price_desc": ("price", "desc"),
    "newest": ("created_at", "desc"),
    "popularity": ("popularity", "desc"),
}


def _hit(src: dict[str, Any], score: float, popularity: float, hl: Highlighter) -> SearchHit:
    rating = src.get("rating")
    return SearchHit.build(
        hl.html,
        item_id=src["item_id"],
        score=score,
        title=src["title"],
        brand=src.get("brand"),
        category=tuple(src.get("category") or ()),
        price=float(src["price"]),
        currency=src.get("currency", "CNY"),
        stock=int(src.get("stock", 0)),
        rating=float(rating) if rating is not None else None,
        popularity=popularity,
    )
