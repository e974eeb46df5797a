"""The embedded search backend: a tantivy index on disk, no server.

Layout under ``root``: one directory per generation (``gen-<n>``) and a ``CURRENT`` file
naming the live one. `TantivyBackend.rebuild` writes a new generation and then replaces
``CURRENT`` atomically; searchers (in this process, or another one such as the API server,
which re-reads ``CURRENT`` when it changes) move to it on their next call. The previous
generation is kept so that a searcher still holding it never fails; older ones are removed.

This is the only module that imports tantivy.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.fsutil import atomic_write
from data.models import Item
from search.analysis import (
    Analyzer,
    Highlighter,
    QueryPlan,
    default_analyzer,
    is_cjk,
    normalize,
)
from search.backend import (
    CATEGORY_NAME_FIELD,
    CATEGORY_NAME_SCORE,
    CHAR_FIELDS,
    FUZZY_FIELDS,
    FUZZY_SCORE,
    TEXT_FIELDS,
    Progress,
)
from search.document import SearchDocument, to_document
from search.errors import IndexNotFoundError, SearchError
from search.query import BoolFilter, RangeFacet, RangeFilter, SearchRequest, TermsFacet, TermsFilter
from search.result import FacetValue, SearchHit, SearchResult, Suggestion

if TYPE_CHECKING:
    import tantivy

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_CURRENT = "CURRENT"
_GEN_PREFIX = "gen-"
_KEYWORD_FIELDS = ("category_l1", "category_l2", "category_l3", "brand", "merchant_id")
_MULTI_KEYWORD_FIELDS = ("category", "tags")
_SUGGEST_KINDS = ("brand", "category", "title")
_SUGGEST_SEP = "\x00"
_TERMS_AGG_SIZE = 65_000
_WRITER_HEAP = 128_000_000
_TOTAL_AGG = "_total"
_FUZZY_CACHE_SIZE = 50_000
_Facets = tuple[dict[str, list[FacetValue]], int]
"""Facet values by field, and the number of hits."""
FACET_CACHE_SIZE = 2048
"""Facet counts (and hit totals) kept per backend for repeated text + filters, dropped
whenever the index changes."""


def _schema() -> tantivy.Schema:
    import tantivy

    sb = tantivy.SchemaBuilder()
    sb.add_text_field("item_id", stored=True, fast=True, tokenizer_name="raw")
    for name in TEXT_FIELDS:
        sb.add_text_field(name, tokenizer_name="whitespace")
    for name in CHAR_FIELDS:
        sb.add_text_field(name, tokenizer_name="whitespace", index_option="freq")
    sb.add_text_field(CATEGORY_NAME_FIELD, tokenizer_name="raw", index_option="basic")
    for name in _KEYWORD_FIELDS + _MULTI_KEYWORD_FIELDS:
        sb.add_text_field(name, fast=True, tokenizer_name="raw")
    sb.add_text_field("suggest", tokenizer_name="raw", index_option="freq")
    sb.add_float_field("price", indexed=True, fast=True)
    sb.add_integer_field("stock", indexed=True, fast=True)
    sb.add_boolean_field("in_stock", indexed=True, fast=True)
    sb.add_boolean_field("is_active", indexed=True, fast=True)
    sb.add_float_field("rating", indexed=True, fast=True)
    sb.add_date_field("created_at", indexed=True, fast=True)
    sb.add_float_field("popularity", indexed=False, fast=True)
    sb.add_bytes_field("source", stored=True)
    return sb.build()


@dataclass
class _Vocabulary:
    """Latin terms of the `FUZZY_FIELDS` by length, and the fuzzy expansions computed so far,
    for one state (`_Generation.version`) of the index."""

    version: int
    terms: dict[str, tuple[list[str], list[int]]]
    """Field → (its Latin terms sorted by length, index of the first term of each length)."""
    expansions: dict[tuple[str, str, int], tuple[str, ...]]


@dataclass
class _Generation:
    name: str
    index: tantivy.Index
    vocabulary: _Vocabulary | None = None
    commit_stamp: tuple[int, int, int] | None = None
    """(mtime, inode, size) of the generation's ``meta.json``, rewritten by every commit
    and merge, by this process or another."""
    version: int = 0
    """Bumped whenever ``commit_stamp`` moves; caches of this generation key on it."""
    meta_path: str = ""
    """The generation's ``meta.json`` (a plain string: stat on every search)."""


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
        self._current_path = str(self.root / _CURRENT)  # stat on every search: no Path objects
        self.analyzer = analyzer or default_analyzer()
        self._schema = _schema()
        self._gen: _Generation | None = None
        self._current_stamp: tuple[int, int] | None = None
        self._open_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._vocab_lock = threading.Lock()
        self._facet_cache: OrderedDict[Hashable, _Facets] = OrderedDict()
        self._facet_cache_state: tuple[str, int] | None = None
        self._facet_cache_lock = threading.Lock()
        self.facet_cache_size = facet_cache_size
        self._closed = False

    # ------------------------------------------------------------ generations

    def _current_file(self) -> Path:
        return self.root / _CURRENT

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._current_path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def _open_generation(self, name: str) -> _Generation:
        import tantivy

        path = self.root / name
        meta = path / "shoprank.json"
        try:
            version = json.loads(meta.read_text())["schema_version"]
        except (OSError, ValueError, KeyError) as exc:
            raise IndexNotFoundError(
                f"search index {path} is incomplete; rebuild it with `shoprank index`"
            ) from exc
        if version != SCHEMA_VERSION:
            raise IndexNotFoundError(
                f"search index {path} has schema v{version}, this code needs v{SCHEMA_VERSION}; "
                "rebuild it with `shoprank index`"
            )
        return _Generation(name, tantivy.Index(self._schema, path=str(path), reuse=True))

    def _live(self, *, create: bool = False) -> _Generation:
        """The live generation, following ``CURRENT`` when another writer swapped it."""
        if self._closed:
            raise SearchError("the search backend is closed; open a new one")
        stamp = self._stamp()
        gen = self._gen
        if gen is not None and stamp == self._current_stamp:
            return gen
        with self._open_lock:
            stamp = self._stamp()
            if self._gen is not None and stamp == self._current_stamp:
                return self._gen
            if stamp is None:
                if not create:
                    raise IndexNotFoundError(
                        f"no search index in {self.root}; build it with `shoprank index`"
                    )
                name = self._new_generation()
                self._publish(name)
                stamp = self._stamp()
            name = self._current_file().read_text().strip()
            if self._gen is None or self._gen.name != name:
                self._gen = self._open_generation(name)
            self._current_stamp = stamp
            return self._gen

    def generation(self) -> str:
        """The live generation's name (changes with every `rebuild`)."""
        return self._live().name

    def _current_version(self, gen: _Generation) -> int:
        """The generation's state: when a commit (here or in another process) rewrote its
        ``meta.json``, reload its searchers now and bump the version caches key on."""
        if not gen.meta_path:
            gen.meta_path = str(self.root / gen.name / "meta.json")
        try:
            st = os.stat(gen.meta_path)
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != gen.commit_stamp:
            with self._open_lock:
                if stamp != gen.commit_stamp:
                    gen.index.reload()
                    gen.commit_stamp = stamp
                    gen.version += 1
        return gen.version

    def _new_generation(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{_GEN_PREFIX}{time.time_ns()}"
        path = self.root / name
        path.mkdir()
        (path / "shoprank.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
        return name

    def _publish(self, name: str) -> None:
        atomic_write(self._current_file(), (name + "\n").encode("utf-8"))

    def _cleanup(self, keep: set[str]) -> None:
        for p in self.root.glob(f"{_GEN_PREFIX}*"):
            if p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)

    # ------------------------------------------------------------ writing

    def _to_tantivy(self, doc: SearchDocument, source: bytes) -> tantivy.Document:
        import tantivy

        d = tantivy.Document()
        d.add_text("item_id", doc.item_id)
        for name in TEXT_FIELDS:
            # Tokens never contain spaces, so the whitespace tokenizer gives them back as
            # they are; tantivy leaves a position gap between values (no phrase spans two).
            for value in getattr(doc, name):
                if value:
                    d.add_text(name, " ".join(value))
        for name in CHAR_FIELDS:
            chars = getattr(doc, name)
            if chars:
                d.add_text(name, " ".join(chars))
        for key in doc.category_names:
            d.add_text(CATEGORY_NAME_FIELD, key)
        for name in _KEYWORD_FIELDS:
            v = getattr(doc, name)
            if v:
                d.add_text(name, v)
        for name in _MULTI_KEYWORD_FIELDS:
            for v in getattr(doc, name):
                d.add_text(name, v)
        for kind, text in _suggest_entries(doc):
            d.add_text("suggest", f"{kind}:{normalize(text)}{_SUGGEST_SEP}{text}")
        d.add_float("price", doc.price)
        d.add_integer("stock", doc.stock)
        d.add_boolean("in_stock", doc.in_stock)
        d.add_boolean("is_active", doc.is_active)
        if doc.rating is not None:
            d.add_float("rating", doc.rating)
        d.add_date("created_at", doc.created_at)
        d.add_float("popularity", doc.popularity)
        d.add_bytes("source", source)
        return d

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
            writer.add_document(self._to_tantivy(to_document(item, pop), source))
            n += 1
            batch += 1
            if progress is not None and batch >= 1000:
                progress(batch)
                batch = 0
        if progress is not None and batch:
            progress(batch)
        return n

    def _commit(self, gen: _Generation, writer: tantivy.IndexWriter) -> None:
        writer.commit()
        writer.wait_merging_threads()
        gen.index.reload()

    def _writer(self, gen: _Generation) -> tantivy.IndexWriter:
        try:
            return gen.index.writer(_WRITER_HEAP, 1)
        except ValueError as exc:
            raise SearchError(
                f"cannot write the search index in {self.root}: {exc}; "
                "another process is writing it, wait for it to finish"
            ) from exc

    def _popularity_of(self, gen: _Generation, item_ids: Sequence[str]) -> dict[str, float]:
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
            gen = self._live(create=True)
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
        import tantivy

        with self._write_lock:
            previous = self._gen.name if self._gen is not None else None
            if previous is None and self._stamp() is not None:
                previous = self._current_file().read_text().strip()
            name = self._new_generation()
            try:
                index = tantivy.Index(self._schema, path=str(self.root / name), reuse=False)
                gen = _Generation(name, index)
                writer = self._writer(gen)
                n = self._add(writer, items, popularity, {}, progress, replace=False)
                self._commit(gen, writer)
            except BaseException:
                shutil.rmtree(self.root / name, ignore_errors=True)
                raise
            self._publish(name)
            with self._open_lock:
                self._gen = gen
                self._current_stamp = self._stamp()
            self._cleanup(keep={name} | ({previous} if previous else set()))
            log.info("search index rebuilt: %d items in %s", n, self.root / name)
            return n

    def upsert(self, items: Sequence[Item], *, popularity: Mapping[str, float] | None = None) -> int:
        with self._write_lock:
            gen = self._live(create=True)
            missing = [i.item_id for i in items if not popularity or i.item_id not in popularity]
            keep = self._popularity_of(gen, missing)
            writer = self._writer(gen)
            n = self._add(writer, items, popularity, keep, None, replace=True)
            self._commit(gen, writer)
            return n

    def delete(self, item_ids: Sequence[str]) -> int:
        import tantivy

        with self._write_lock:
            gen = self._live(create=True)
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
            gen = self._live(create=True)
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
            gen = self._live()
            self._current_version(gen)
            return int(gen.index.searcher().num_docs)
        except IndexNotFoundError:
            return 0

    def health(self) -> bool:
        try:
            self._live().index.searcher()
        except SearchError:
            return False
        return True

    def close(self) -> None:
        self._closed = True
        self._gen = None

    # -- query building

    def _vocabulary(
        self, gen: _Generation, searcher: tantivy.Searcher, version: int
    ) -> _Vocabulary:
        """The generation's fuzzy vocabulary for index state ``version`` (read from
        ``searcher``, opened after that state)."""
        vocab = gen.vocabulary
        if vocab is not None and vocab.version == version:
            return vocab
        with self._vocab_lock:
            vocab = gen.vocabulary
            if vocab is not None and vocab.version == version:
                return vocab
            terms: dict[str, tuple[list[str], list[int]]] = {}
            for field in FUZZY_FIELDS:
                # CJK terms are never within the allowed edits of a Latin word
                found = searcher.terms_with_prefix(field, "")
                latin = [t for t, _n in found if t and not is_cjk(t[0])]
                latin.sort(key=lambda t: (len(t), t))
                longest = len(latin[-1]) if latin else 0
                starts = [bisect.bisect_left(latin, n, key=len) for n in range(longest + 2)]
                terms[field] = (latin, starts)
            # Unchanged terms (a price or stock update): keep the expansions found so far.
            same = vocab is not None and vocab.terms == terms
            vocab = _Vocabulary(version, terms, vocab.expansions if same and vocab else {})
            gen.vocabulary = vocab
            return vocab

    def _fuzzy_terms(
        self, vocab: _Vocabulary, field: str, token: str, distance: int
    ) -> tuple[str, ...]:
        """Terms of ``field`` within ``distance`` edits of ``token`` (optimal string alignment,
        as the engines' fuzzy queries; itself included when indexed), found once per
        vocabulary."""
        key = (field, token, distance)
        found = vocab.expansions.get(key)
        if found is None:
            from rapidfuzz import process
            from rapidfuzz.distance import OSA

            latin, starts = vocab.terms.get(field, ([], [0]))
            lo = starts[min(max(len(token) - distance, 0), len(starts) - 1)]
            hi = starts[min(len(token) + distance + 1, len(starts) - 1)]
            found = tuple(
                m[0]
                for m in process.extract(
                    token, latin[lo:hi], scorer=OSA.distance, score_cutoff=distance, limit=None
                )
            )
            if len(vocab.expansions) < _FUZZY_CACHE_SIZE:
                vocab.expansions[key] = found
        return found

    def _text_query(self, plan: QueryPlan, vocab: _Vocabulary | None = None) -> tantivy.Query:
        """The scoring query of a plan. Fuzzy alternatives are expanded to the indexed terms
        within their distance (from ``vocab``), each a constant-score term query under one
        disjunction-max: the same matches and scores as a fuzzy term query, but the engine
        reads only those terms' postings instead of building an automaton and a bit set of
        every matching document on each search."""
        import tantivy

        Q, Occur, schema = tantivy.Query, tantivy.Occur, self._schema
        if plan.is_empty:
            return Q.all_query()
        clause_queries = []
        for clause in plan.clauses:
            subs: list[tuple[Any, tantivy.Query]] = []
            for alt in clause.alternatives:
                for field, weight in (CHAR_FIELDS if alt.chars else TEXT_FIELDS).items():
                    if len(alt.tokens) == 1:
                        q = Q.term_query(schema, field, alt.tokens[0])
                    else:
                        q = Q.phrase_query(schema, field, list(alt.tokens))
                    subs.append((Occur.Should, Q.boost_query(q, weight * alt.boost)))
                if plan.typo_tolerance and alt.fuzzy_distance > 0:
                    assert vocab is not None, "fuzzy alternatives need the vocabulary"
                    fuzzy = (alt.tokens[0], alt.fuzzy_distance)
                    for field in FUZZY_FIELDS:
                        score = FUZZY_SCORE * TEXT_FIELDS[field] * alt.boost
                        near = [
                            Q.const_score_query(Q.term_query(schema, field, t), score)
                            for t in self._fuzzy_terms(vocab, field, *fuzzy)
                        ]
                        if len(near) == 1:
                            subs.append((Occur.Should, near[0]))
                        elif near:
                            subs.append((Occur.Should, Q.disjunction_max_query(near)))
            clause_queries.append(Q.boolean_query(subs))
        msm = plan.minimum_should_match
        if msm >= len(clause_queries):
            parts = [(Occur.Must, q) for q in clause_queries]
        else:
            any_msm = Q.boolean_query([(Occur.Should, q) for q in clause_queries], msm)
            parts = [(Occur.Must, any_msm)]
        for key, boost in plan.names:  # optional: adds score, never needed to match
            nq = Q.term_query(schema, CATEGORY_NAME_FIELD, key)
            parts.append((Occur.Should, Q.const_score_query(nq, CATEGORY_NAME_SCORE * boost)))
        return Q.boolean_query(parts)

    def _filter_query(self, f: TermsFilter | RangeFilter | BoolFilter) -> tantivy.Query:
        import tantivy

        Q, schema = tantivy.Query, self._schema
        if isinstance(f, TermsFilter):
            return Q.term_set_query(schema, f.field, list(f.values))
        if isinstance(f, BoolFilter):
            return Q.term_query(schema, f.field, f.value)
        if f.field == "stock":
            ftype = tantivy.FieldType.Integer
            conv: Any = _int_bounds(f)
            low, high, inc_low, inc_high = conv
        else:
            ftype = tantivy.FieldType.Float
            low = f.gte if f.gte is not None else f.gt
            high = f.lte if f.lte is not None else f.lt
            inc_low = f.gt is None
            inc_high = f.lt is None
            low = float(low) if low is not None else None
            high = float(high) if high is not None else None
        if low is None and high is None:
            return Q.empty_query()
        return Q.range_query(
            schema,
            f.field,
            ftype,
            low,
            high,
            include_lower=inc_low if low is not None else True,
            include_upper=inc_high if high is not None else True,
        )

    def _query(
        self, text_q: tantivy.Query, groups: Mapping[str, Sequence[TermsFilter | RangeFilter | BoolFilter]]
    ) -> tantivy.Query:
        import tantivy

        Q, Occur = tantivy.Query, tantivy.Occur
        if not groups:
            return text_q
        parts = [(Occur.Must, text_q)]
        for filters in groups.values():
            if len(filters) == 1:
                fq = self._filter_query(filters[0])
            else:
                fq = Q.boolean_query([(Occur.Should, self._filter_query(f)) for f in filters])
            parts.append((Occur.Must, Q.const_score_query(fq, 0.0)))
        return Q.boolean_query(parts)

    # -- search

    def search(self, request: SearchRequest, plan: QueryPlan | None = None) -> SearchResult:
        import tantivy

        t0 = time.perf_counter()
        gen = self._live()
        version = self._current_version(gen)
        searcher = gen.index.searcher()
        if plan is None:
            plan = self.analyzer.plan(request.text, typo_tolerance=request.typo_tolerance)
        vocab = self._vocabulary(gen, searcher, version) if plan.fuzzy_tokens() else None
        text_q = self._text_query(plan, vocab)
        query = self._query(text_q, request.filters_by_field())
        start, count = request.window()
        order_field, order = _SORTS[request.sort]
        # With facets, the shared aggregation over the full query also counts the hits, so
        # the top-k search can skip counting (much faster for broad queries).
        facets: dict[str, list[FacetValue]] = {}
        total: int | None = None
        if request.facets:
            key = (plan, request.filters, request.facets, request.include_inactive)
            got = self._cached_facets((gen.name, version), key)
            if got is None:
                got = self._facets(searcher, request, text_q, query)
                self._cache_facets((gen.name, version), key, got)
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

    def _cached_facets(
        self, state: tuple[str, int], key: Hashable
    ) -> _Facets | None:
        if self.facet_cache_size <= 0:
            return None
        with self._facet_cache_lock:
            if self._facet_cache_state != state:
                return None
            got = self._facet_cache.get(key)
            if got is not None:
                self._facet_cache.move_to_end(key)
            return got

    def _cache_facets(
        self, state: tuple[str, int], key: Hashable, value: _Facets
    ) -> None:
        """Remember facet counts and total for ``key`` at index ``state`` (generation,
        version); a newer state empties the cache."""
        if self.facet_cache_size <= 0:
            return
        with self._facet_cache_lock:
            if self._facet_cache_state != state:
                self._facet_cache.clear()
                self._facet_cache_state = state
            self._facet_cache[key] = value
            while len(self._facet_cache) > self.facet_cache_size:
                self._facet_cache.popitem(last=False)

    def _facets(
        self,
        searcher: tantivy.Searcher,
        request: SearchRequest,
        text_q: tantivy.Query,
        full_query: tantivy.Query,
    ) -> tuple[dict[str, list[FacetValue]], int]:
        """Facet values, and the number of hits (counted by the shared aggregation)."""
        filtered = {f.field for f in request.filters}
        own = [f for f in request.facets if f.field in filtered]
        selector = _selector(request, own[0].field) if len(own) == 1 else None
        if selector is not None:
            # One facet field F is filtered (a ticked brand, a price range): one pass over
            # the query without F's filter gives F's own counts directly, and every other
            # facet's counts (and the total) with F's filter applied through a selector
            # sub-aggregation on F, since an item has one value of F.
            field = own[0].field
            aggs: dict[str, Any] = {f.field: _agg(f) for f in own}
            for f in request.facets:
                if f.field != field:
                    aggs[f.field] = {**_agg(f), "aggs": {_SELECTED_AGG: selector}}
            aggs[_SELECTED_AGG] = selector
            q = self._query(text_q, request.filters_by_field(excluding=field))
            raw: dict[str, Any] = searcher.aggregate(q, aggs)
            for f in request.facets:
                if f.field != field:
                    for b in raw.get(f.field, {}).get("buckets", []):
                        b["doc_count"] = _selected_count(b.get(_SELECTED_AGG, {}))
            raw[_TOTAL_AGG] = {"value": _selected_count(raw.get(_SELECTED_AGG, {}))}
        else:
            # Facets on unfiltered fields share one aggregation over the full query.
            shared = {f.field: _agg(f) for f in request.facets if f.field not in filtered}
            shared[_TOTAL_AGG] = {"value_count": {"field": "price"}}
            raw = searcher.aggregate(full_query, shared)
            for f in own:
                q = self._query(text_q, request.filters_by_field(excluding=f.field))
                raw.update(searcher.aggregate(q, {f.field: _agg(f)}))
        out: dict[str, list[FacetValue]] = {}
        for f in request.facets:
            buckets = raw.get(f.field, {}).get("buckets", [])
            if isinstance(f, TermsFacet):
                out[f.field] = _terms_values(f, buckets, request.selected_terms(f.field))
            else:
                out[f.field] = _range_values(f, buckets, request.selected_ranges(f.field))
        total = int(raw.get(_TOTAL_AGG, {}).get("value") or 0)
        return out, total

    def suggest(self, prefix: str, size: int = 10) -> list[Suggestion]:
        import tantivy

        p = normalize(prefix).strip()
        if not p or size < 1:
            return []
        gen = self._live()
        self._current_version(gen)
        searcher = gen.index.searcher()
        active = tantivy.Query.term_query(self._schema, "is_active", True)
        out: list[Suggestion] = []
        for kind in _SUGGEST_KINDS:
            if len(out) >= size:
                break
            terms = searcher.terms_with_prefix(
                "suggest", f"{kind}:{p}", filter_query=active, limit=size - len(out)
            )
            for term, n in terms:
                if n <= 0:
                    continue
                text = term.split(_SUGGEST_SEP, 1)[1]
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


def _int_bounds(f: RangeFilter) -> tuple[int | None, int | None, bool, bool]:
    """Integer bounds of a range over an integer field, all inclusive."""
    import math

    low: int | None = None
    high: int | None = None
    if f.gte is not None:
        low = math.ceil(f.gte)
    elif f.gt is not None:
        low = math.floor(f.gt) + 1
    if f.lte is not None:
        high = math.floor(f.lte)
    elif f.lt is not None:
        high = math.ceil(f.lt) - 1
    return low, high, True, True


def _suggest_entries(doc: SearchDocument) -> list[tuple[str, str]]:
    if not doc.is_active:
        return []
    out: list[tuple[str, str]] = []
    if doc.brand:
        out.append(("brand", doc.brand))
    out.extend(("category", c) for c in dict.fromkeys(doc.category_path))
    out.append(("title", doc.title_raw))
    return out


_SINGLE_VALUED = frozenset(
    ("category_l1", "category_l2", "category_l3", "brand", "merchant_id", "price", "rating")
)
_SELECTED_AGG = "_selected"


def _selector(request: SearchRequest, field: str) -> dict[str, Any] | None:
    """An aggregation on ``field`` whose selected bucket counts sum to the documents that
    pass the request's filters on that field, or None when that cannot be read off one
    aggregation (a multi-valued field, or several ranges that may overlap)."""
    if field not in _SINGLE_VALUED:
        return None
    filters = [f for f in request.filters if f.field == field]
    if all(isinstance(f, TermsFilter) for f in filters):
        values = sorted(request.selected_terms(field))
        return {"terms": {"field": field, "size": len(values), "include": values}}
    if len(filters) != 1 or not isinstance(filters[0], RangeFilter):
        return None
    import math

    f = filters[0]
    # the range aggregation's buckets are [from, to): move the exclusive/inclusive bounds
    low = f.gte if f.gt is None else math.nextafter(f.gt, math.inf)
    high = f.lt if f.lte is None else math.nextafter(f.lte, math.inf)
    if low is not None and high is not None and low >= high:
        return None  # an empty range: let the plain path count nothing
    bucket: dict[str, Any] = {"key": _SELECTED_AGG}
    if low is not None:
        bucket["from"] = float(low)
    if high is not None:
        bucket["to"] = float(high)
    return {"range": {"field": field, "ranges": [bucket]}}


def _selected_count(agg: Mapping[str, Any]) -> int:
    """Documents in a `_selector` aggregation's selected buckets."""
    return sum(
        int(b["doc_count"])
        for b in agg.get("buckets", [])
        if "from" not in b and "to" not in b or b.get("key") == _SELECTED_AGG
    )


def _agg(f: TermsFacet | RangeFacet) -> dict[str, Any]:
    if isinstance(f, TermsFacet):
        return {"terms": {"field": f.field, "size": _TERMS_AGG_SIZE}}
    ranges = []
    for b in f.buckets:
        r: dict[str, float] = {}
        if b.gte is not None:
            r["from"] = b.gte
        if b.lt is not None:
            r["to"] = b.lt
        ranges.append(r)
    return {"range": {"field": f.field, "ranges": ranges}}


def _terms_values(f: TermsFacet, buckets: list[dict[str, Any]], selected: set[str]) -> list[FacetValue]:
    counts = {str(b["key"]): int(b["doc_count"]) for b in buckets if int(b["doc_count"]) > 0}
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: f.size]
    out = [FacetValue(value=k, count=c, selected=k in selected) for k, c in ranked]
    shown = {k for k, _ in ranked}
    for k in sorted(selected - shown):
        out.append(FacetValue(value=k, count=counts.get(k, 0), selected=True))
    return out


def _range_values(
    f: RangeFacet, buckets: list[dict[str, Any]], selected: set[tuple[float | None, float | None]]
) -> list[FacetValue]:
    by_bounds = {(b.get("from"), b.get("to")): int(b["doc_count"]) for b in buckets}
    out = []
    for b in f.buckets:
        n = by_bounds.get((b.gte, b.lt), 0)
        out.append(
            FacetValue(value=b.key, count=n, selected=(b.gte, b.lt) in selected, gte=b.gte, lt=b.lt)
        )
    return out


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
