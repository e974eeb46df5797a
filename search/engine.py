"""`SearchEngine`: one search backend plus what makes search never answer "nothing".

It is itself a `search.backend.SearchBackend` (it forwards writes and adds to them), and
does the same work in Python whichever backend is under it, so the embedded and OpenSearch
backends keep one behaviour (contract tests: ``tests/search/test_contract_engine.py``):

1. **Price words** (`search.understand`): ``500元以下`` leaves the text and becomes a price
   filter (``SearchResult.price_filter``).
2. **Lexical search** with the analyzer's plan (regional variants and OpenCC phrase
   conversions are in the plan: `search.analysis`).
3. **Relaxation** (`search.relax`) when fewer than ``min_results`` items match: spelling,
   then words matching nothing, then brand/colour words, then any word
   (``SearchResult.relaxation``); the "did you mean" suggestion (``SearchResult.suggestion``).
4. **Hybrid retrieval** for relevance-sorted text queries: the dense index's neighbours
   (`search.dense`, built per index generation: `search.aids`), filtered by the request's
   filters through the backend (``item_id`` terms filter), fused with the lexical top
   ``fuse_depth`` by weighted reciprocal rank fusion: the dense list re-orders the lexical
   hits it also holds, and when lexical matching and relaxation found nothing, the dense
   neighbours are the answer (``SearchResult.dense_hits``). Hit scores are then the fused
   scores.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from data.models import Item
from data.text import normalize
from search.aids import CatalogAids
from search.analysis import Analyzer, QueryPlan
from search.backend import Progress, SearchBackend
from search.dense import reciprocal_rank_fusion
from search.errors import SearchError
from search.memo import StateMemo
from search.query import MAX_RERANK_DEPTH, RangeFilter, SearchRequest, TermsFacet, TermsFilter
from search.relax import Relaxed, Speller, corrected_text, relax
from search.result import Relaxation, SearchHit, SearchResult, Suggestion
from search.understand import understand

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    relax: bool = True
    min_results: int = 1
    """Relax when the strict query finds fewer items than this."""
    hybrid: bool = True
    dense_k: int = 30
    """Neighbours asked of the dense index."""
    dense_weight: float = 0.05
    """Weight of the dense list in the fusion (the lexical list has 1.0): a dense-only item
    ranks below every lexical hit of the fused depth, so it fills short lists, and agreement
    of both lists reorders near-ties (measured in docs/decisions.md)."""
    dense_min_similarity: float = 0.6
    """Cosine a dense-only item needs to fill a short list (nonsense words such as
    ``zebra`` reach about 0.5 on the synthetic shop, meaningful queries 0.65 and more)."""
    dense_min_coverage: float = 0.6
    """Share of the query's character n-grams the catalog must hold before dense-only items
    answer it (``qqzzxx``: 0.1, ``zebra``: 0.4, ``something warm for winter hiking``: 0.8)."""
    fuse_depth: int = 20
    """Lexical hits fused with the dense ones (at least the requested page's end): the first
    two pages of 10 come from one fused list. Each extra hit is a stored document read."""
    rrf_k: int = 60
    understand_price: bool = True
    behaviour: bool = True
    """Fuse the behaviour list (`search.behaviour`) when the aids have one."""
    behaviour_k: int = 30
    """Items asked of the behaviour vectors."""
    behaviour_weight: float = 0.05
    """Weight of the behaviour list in the fusion (as the text-vector list's)."""
    behaviour_seeds: int = 5
    """Text neighbours (cosine at least ``dense_min_similarity``) that seed the behaviour
    neighbours of a query no shopper searched before."""
    behaviour_min_similarity: float = 0.5
    """Cosine to the seeds a behaviour neighbour needs to fill a short list."""
    memo_size: int = 4096
    """Relaxation outcomes and per-word counts remembered per index state (0: none)."""
    memo_ttl_seconds: float = 60.0
    """How long a remembered relaxation may outlive a write by another process."""


class SearchEngine:
    """A `SearchBackend` over ``backend`` with the steps of the module docstring. ``aids_root``
    holds the per-generation aids; None keeps them in memory only."""

    def __init__(
        self,
        backend: SearchBackend,
        *,
        analyzer: Analyzer,
        aids_root: Path | None,
        config: EngineConfig | None = None,
    ) -> None:
        self.backend = backend
        self.analyzer = analyzer
        self.aids_root = aids_root
        self.config = config or EngineConfig()
        self._aids: tuple[str, CatalogAids | None, Speller | None] | None = None
        self._brands: tuple[str, set[str]] | None = None
        self._lock = threading.Lock()
        self._writes = 0
        """Writes through this engine; with the generation, the state the memos key on."""
        self._relaxed: StateMemo[Relaxed] = StateMemo(
            self.config.memo_size, self.config.memo_ttl_seconds
        )
        self._counts: StateMemo[int] = StateMemo(
            self.config.memo_size, self.config.memo_ttl_seconds
        )

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.backend.name

    def __getattr__(self, attr: str) -> object:
        """Backend-specific attributes (``client``, ``alias``, ``root``, …) of the wrapped
        backend."""
        if attr == "backend":
            raise AttributeError(attr)
        return getattr(self.backend, attr)

    # ------------------------------------------------------------ aids

    def _generation(self) -> str:
        gen = getattr(self.backend, "generation", None)
        return gen() if gen is not None else ""

    def _backend_state(self) -> str:
        """The backend's index state when it can tell (the embedded backend sees every
        commit, also another process's); '' otherwise (the memos' TTL covers that case)."""
        state = getattr(self.backend, "state", None)
        return state() if state is not None else ""

    def _current(self) -> tuple[str, CatalogAids | None, Speller | None]:
        """The live generation, its aids and speller."""
        gen = self._generation()
        got = self._aids
        if got is not None and got[0] == gen:
            return got
        with self._lock:
            got = self._aids
            if got is not None and got[0] == gen:
                return got
            aids = CatalogAids.load(self.aids_root / gen) if self.aids_root and gen else None
            if aids is None and got is not None and got[0] == gen:
                aids = got[1]
            speller = Speller(aids.lexicon if aids else {}, self.analyzer)
            self._aids = (gen, aids, speller)
            return self._aids

    def aids(self) -> CatalogAids | None:
        """The aids of the live generation (None when it has none)."""
        return self._current()[1]

    def _wrote(self) -> None:
        """A write went through: the memos' state moves on."""
        with self._lock:
            self._writes += 1

    def _store(self, aids: CatalogAids) -> None:
        try:
            gen = self._generation()
        except SearchError as exc:  # the index is written; only the aids wait for a rebuild
            log.warning("search aids kept in memory only: %s", exc)
            gen = ""
        if self.aids_root is not None and gen:
            aids.save(self.aids_root / gen)
            keep = {gen} | ({self._aids[0]} if self._aids else set())
            for p in self.aids_root.iterdir():
                if p.is_dir() and p.name not in keep:
                    shutil.rmtree(p, ignore_errors=True)
        with self._lock:
            self._aids = (gen, aids, Speller(aids.lexicon, self.analyzer))
            self._brands = None

    def _brand_keys(self) -> set[str]:
        """Brands as query-word keys (``Maison Rose`` → ``maison rose``)."""
        gen = self._generation()
        if self._brands is not None and self._brands[0] == gen:
            return self._brands[1]
        aids = self.aids()
        if aids is not None:
            names = aids.brands
        else:  # no aids: the 100 largest brands of the index
            res = self.backend.search(
                SearchRequest(size=1, facets=(TermsFacet(field="brand", size=100),))
            )
            names = {normalize(v.value) for v in res.facets.get("brand", [])}
        keys = {" ".join(self.analyzer.words(n)) for n in names}
        self._brands = (gen, keys)
        return keys

    # ------------------------------------------------------------ writes

    def _tee(self, items: Iterable[Item], into: list[Item]) -> Iterator[Item]:
        for item in items:
            into.append(item)
            yield item

    def index_items(
        self,
        items: Iterable[Item],
        *,
        popularity: Mapping[str, float] | None = None,
        progress: Progress | None = None,
    ) -> int:
        seen: list[Item] = []
        n = self.backend.index_items(
            self._tee(items, seen), popularity=popularity, progress=progress
        )
        aids = self.aids()
        if aids is None:
            aids = CatalogAids.build(seen, dense=self.config.hybrid)
        else:
            aids.add(seen)
        self._store(aids)
        self._wrote()
        return n

    def rebuild(
        self,
        items: Iterable[Item],
        *,
        popularity: Mapping[str, float] | None = None,
        progress: Progress | None = None,
        events: pa.Table | None = None,
    ) -> int:
        """`SearchBackend.rebuild`, then the aids of the new generation; ``events`` (the
        shop's event log, `data.event_table.EVENT_SCHEMA`) adds the behaviour vectors."""
        seen: list[Item] = []
        n = self.backend.rebuild(self._tee(items, seen), popularity=popularity, progress=progress)
        t0 = time.perf_counter()
        self._store(CatalogAids.build(seen, dense=self.config.hybrid, events=events))
        log.info("search aids built for %d items in %.1f s", len(seen), time.perf_counter() - t0)
        self._wrote()
        return n

    def upsert(
        self, items: Sequence[Item], *, popularity: Mapping[str, float] | None = None
    ) -> int:
        n = self.backend.upsert(items, popularity=popularity)
        cached = self._aids  # no lookup here: the write succeeded, nothing after it may fail
        if cached is not None and cached[1] is not None:
            with self._lock:
                cached[1].add(items)  # this process's copy; the next rebuild writes a fresh set
        self._wrote()
        return n

    def delete(self, item_ids: Sequence[str]) -> int:
        n = self.backend.delete(item_ids)  # dense hits pass through the backend: gone too
        self._wrote()
        return n

    def update_fields(
        self,
        item_id: str,
        *,
        price: float | None = None,
        stock: int | None = None,
        is_active: bool | None = None,
        popularity: float | None = None,
    ) -> bool:
        changed = self.backend.update_fields(
            item_id, price=price, stock=stock, is_active=is_active, popularity=popularity
        )
        self._wrote()
        return changed

    def suggest(self, prefix: str, size: int = 10) -> list[Suggestion]:
        return self.backend.suggest(prefix, size)

    def count(self) -> int:
        return self.backend.count()

    def health(self) -> bool:
        return self.backend.health()

    def close(self) -> None:
        self.backend.close()

    # ------------------------------------------------------------ search

    def search(self, request: SearchRequest, plan: QueryPlan | None = None) -> SearchResult:
        t0 = time.perf_counter()
        cfg = self.config
        if plan is not None or not request.text:
            return self.backend.search(request, plan)
        text, filters, price = request.text, request.filters, None
        if cfg.understand_price:
            u = understand(text)
            if u.price is not None:
                text = u.text
                price = u.price.model_dump(include={"gte", "lte"}, exclude_none=True)
                if not any(isinstance(f, RangeFilter) and f.field == "price" for f in filters):
                    filters = (*filters, u.price)
        gen, aids, speller = self._current()
        state = (gen, self._writes, self._backend_state())
        want = request.page * request.size
        hybrid = bool(
            cfg.hybrid
            and aids is not None
            and aids.dense is not None
            and text
            and request.sort == "relevance"
            and max(want, cfg.fuse_depth) <= MAX_RERANK_DEPTH
        )
        depth = request.rerank_depth
        if hybrid:
            depth = max(cfg.fuse_depth, want, request.rerank_depth or 0)
        lex_req = request.model_copy(
            update={"text": text, "filters": filters, "rerank_depth": depth}
        )
        strict = self.analyzer.plan(text, typo_tolerance=request.typo_tolerance)
        memo_key = (text, filters, request.typo_tolerance, request.include_inactive)
        known = self._relaxed.get(state, memo_key) if cfg.relax else None
        result: SearchResult | None = None
        relaxation: Relaxation | None = None
        if known is not None and known.plan is not None:
            # asked before and relaxed: the plan that answered, checked again
            got = self.backend.search(lex_req, known.plan)
            if got.total >= cfg.min_results:
                result, relaxation = got, known.relaxation
        if result is None:
            result = self.backend.search(lex_req, strict)
            if cfg.relax and not strict.is_empty and result.total < cfg.min_results:
                if known is None or known.plan is not None:  # not known to find nothing
                    relaxed = relax(
                        self.backend,
                        lex_req,
                        text,
                        strict,
                        analyzer=self.analyzer,
                        speller=speller,
                        brands=self._brand_keys,
                        counts=self._counts,
                        state=state,
                        min_results=cfg.min_results,
                    )
                    self._relaxed.put(state, memo_key, relaxed[0])
                    if relaxed[1] is not None:
                        result, relaxation = relaxed[1], relaxed[0].relaxation
        suggestion = None
        if speller is not None and aids is not None:
            fixes = speller.corrections(text)
            if fixes:
                suggestion = corrected_text(text, fixes)
        dense_added = 0
        fused: list[tuple[SearchHit, float]] | None = None
        if hybrid and aids is not None and aids.dense is not None:
            fused, dense_added, total = self._fuse(lex_req, text, result, aids)
            if fused is not None:
                result = result.model_copy(update={"total": total, "offset": 0})
        hits, offset = result.hits, result.offset
        if hybrid and request.rerank_depth is None:  # the fused list starts at rank 0
            offset = request.offset
            if fused is None:
                hits = hits[request.page_slice()]
        if fused is not None:  # fused scores, for the hits returned only
            if request.rerank_depth is None:
                fused = fused[request.page_slice()]
            hits = [_rescored(hit, score) for hit, score in fused]
        return result.model_copy(
            update={
                "hits": hits,
                "offset": offset,
                "relaxation": relaxation,
                "suggestion": suggestion,
                "price_filter": price,
                "dense_hits": dense_added,
                "took_ms": (time.perf_counter() - t0) * 1000,
            }
        )

    def _fuse(
        self, req: SearchRequest, text: str, result: SearchResult, aids: CatalogAids
    ) -> tuple[list[tuple[SearchHit, float]] | None, int, int]:
        """The lexical hits (from rank 0) fused with the text-vector neighbours and the
        behaviour list that pass the filters, best first with their fused scores (None: the
        lexical order stands), the number of hits that only those lists found, and the
        total."""
        cfg = self.config
        assert aids.dense is not None
        near = aids.dense.query(text, cfg.dense_k)
        behaviour: list[tuple[str, float]] = []
        logged = False
        if cfg.behaviour and aids.behaviour is not None:
            seeds = [
                (i, s) for i, s in near[: cfg.behaviour_seeds] if s >= cfg.dense_min_similarity
            ]
            behaviour, logged = aids.behaviour.candidates(text, seeds, cfg.behaviour_k)
        if not near and not behaviour:
            return None, 0, result.total
        lexical = {h.item_id: h for h in result.hits}
        allowed: dict[str, SearchHit] = {}
        dense_ids = [i for i, _ in near]
        beh_ids = [i for i, _ in behaviour]
        if result.total < cfg.min_results:
            # lexical matching and relaxation found nothing: items near enough (and passing
            # the request's filters) answer; the text lists only for a query whose n-grams
            # the catalog holds, the behaviour list also for one shoppers searched before
            covered = aids.dense.coverage(text) >= cfg.dense_min_coverage
            dense_ids = [i for i, s in near if covered and s >= cfg.dense_min_similarity]
            beh_ids = [
                i for i, s in behaviour if (logged or covered) and s >= cfg.behaviour_min_similarity
            ]
            ids = tuple(dict.fromkeys(dense_ids + beh_ids))
            if ids:
                allowed_req = SearchRequest(
                    filters=(*req.filters, TermsFilter(field="item_id", values=ids)),
                    size=len(ids),
                    include_inactive=req.include_inactive,
                )
                allowed = {h.item_id: h for h in self.backend.search(allowed_req).hits}
            pool: Mapping[str, SearchHit] = allowed
        else:  # the other lists re-order the lexical hits they agree with
            pool = lexical
        dense_ids = [i for i in dense_ids if i in pool]
        beh_ids = [i for i in beh_ids if i in pool]
        if not dense_ids and not beh_ids:
            return None, 0, result.total
        fused = reciprocal_rank_fusion(
            [
                (list(lexical), 1.0),
                (dense_ids, cfg.dense_weight),
                (beh_ids, cfg.behaviour_weight),
            ],
            k=cfg.rrf_k,
        )
        out: list[tuple[SearchHit, float]] = []
        added = 0
        for item_id, score in fused:
            hit = lexical.get(item_id)
            if hit is None:
                hit = allowed[item_id]
                added += 1
            out.append((hit, score))
        # with every lexical hit in hand, a dense-only hit is a new match; otherwise it may
        # be a lexical match further down, already counted
        total = result.total + added if result.total <= len(result.hits) else result.total
        return out, added, total


def _rescored(hit: SearchHit, score: float) -> SearchHit:
    """The hit with the fused score (×1000, so scores read like small numbers); the copy
    keeps its lazy highlighter."""
    new = SearchHit.model_construct(**{**hit.__dict__, "score": round(score * 1000, 6)})
    new.__pydantic_private__ = dict(hit.__pydantic_private__ or {})  # the lazy highlighter
    return new
