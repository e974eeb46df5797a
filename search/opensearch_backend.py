"""The OpenSearch search backend (opensearch-py). The only module that imports opensearchpy.

It follows the reference semantics in `search.backend`, so it answers like the embedded
tantivy backend:

* Analysis happens in Python (`search.analysis`): traditional → simplified, NFKC, lower-case,
  CJK character bigrams, light English stemming. The text fields ``title``, ``meta`` and
  ``description`` hold those tokens, space-joined, under OpenSearch's ``whitespace``
  analyzer (one array entry per value, ``position_increment_gap`` = `POSITION_GAP`). Doing
  it once in Python, rather than with ``cjk_bigram``/``stemmer`` filters inside OpenSearch,
  is what makes both backends find the same items; synonyms are expanded into the query
  plan from the same merchandiser-edited file (`search.analysis.Analyzer`).
* Text query: one ``bool`` per plan clause (term or exact phrase per alternative and field,
  boosted by field weight × alternative boost × (1 + k1) so scores are on tantivy's BM25
  scale; with typo tolerance a ``constant_score`` fuzzy query in `FUZZY_FIELDS`; a
  one-character alternative in `CHAR_FIELDS`), ``minimum_should_match`` of the plan over the
  clauses, plus an optional ``constant_score`` term on `CATEGORY_NAME_FIELD` per plan name.
* Multi-select facets: filters on fields that are not requested facets go into the query;
  filters on requested facet fields go into ``post_filter``; each facet's aggregation is
  wrapped in a ``filter`` aggregation with every post-filter except its own field's.
* Index lifecycle: documents live in ``<alias>-<timestamp>`` indices behind the alias
  ``index``. `OpenSearchBackend.rebuild` loads a new index with refresh off, refreshes it,
  swaps the alias atomically (one ``_aliases`` call), and deletes indices older than the one
  it replaced: the replaced one is kept until the next rebuild, so a search that resolved the
  alias just before the swap never lands on a deleted index.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from data.models import Item
from search.analysis import Analyzer, Highlighter, QueryPlan, default_analyzer, normalize
from search.backend import (
    CATEGORY_NAME_FIELD,
    CATEGORY_NAME_SCORE,
    CHAR_FIELDS,
    FUZZY_FIELDS,
    FUZZY_SCORE,
    TEXT_FIELDS,
    Progress,
)
from search.breaker import CircuitBreaker, CircuitOpen
from search.document import POSITION_GAP, SearchDocument, to_document
from search.errors import BackendUnavailableError, IndexNotFoundError, SearchError
from search.query import (
    BoolFilter,
    RangeFacet,
    RangeFilter,
    SearchRequest,
    TermsFacet,
    TermsFilter,
)
from search.result import FacetValue, SearchHit, SearchResult, Suggestion

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

BM25_K1 = 1.2
BM25_B = 0.75
SCORE_SCALE = 1.0 + BM25_K1
"""Lucene's BM25 drops the constant (k1 + 1) factor that tantivy keeps; boosting by it puts
both engines' scores (and so the fixed fuzzy score next to them) on one scale."""
BULK_CHUNK = 1000
_SUGGEST_KINDS = ("brand", "category", "title")
_SUGGEST_SEP = "\x1f"
_HIT_SOURCE = ("item_id", "title_raw", "brand", "category_path", "price", "currency", "stock",
               "rating", "popularity")
_SORTS: dict[str, list[Any]] = {
    "relevance": ["_score", {"item_id": "asc"}],
    "price_asc": [{"price": "asc"}, {"item_id": "asc"}],
    "price_desc": [{"price": "desc"}, {"item_id": "asc"}],
    "newest": [{"created_at": "desc"}, {"item_id": "asc"}],
    "popularity": [{"popularity": "desc"}, {"item_id": "asc"}],
}

Filter = TermsFilter | RangeFilter | BoolFilter


def _keyword(*, index: bool = True) -> dict[str, Any]:
    return {"type": "keyword"} if index else {"type": "keyword", "index": False, "doc_values": False}


def index_body(*, shards: int = 1, replicas: int = 0) -> dict[str, Any]:
    """Settings and mapping of one product index."""
    text = {"type": "text", "analyzer": "whitespace", "position_increment_gap": POSITION_GAP}
    return {
        "settings": {
            "index": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                "similarity": {"default": {"type": "BM25", "k1": BM25_K1, "b": BM25_B}},
            }
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "item_id": _keyword(),
                **{name: dict(text) for name in TEXT_FIELDS},
                **{name: {"type": "text", "analyzer": "whitespace", "index_options": "freqs"}
                   for name in CHAR_FIELDS},
                CATEGORY_NAME_FIELD: _keyword(),
                "category_l1": _keyword(),
                "category_l2": _keyword(),
                "category_l3": _keyword(),
                "category": _keyword(),
                "brand": _keyword(),
                "tags": _keyword(),
                "merchant_id": _keyword(),
                "suggest": _keyword(),
                "price": {"type": "double"},
                "stock": {"type": "long"},
                "in_stock": {"type": "boolean"},
                "is_active": {"type": "boolean"},
                "rating": {"type": "double"},
                "created_at": {"type": "date"},
                "popularity": {"type": "double"},
                # for rendering hits only
                "title_raw": _keyword(index=False),
                "category_path": _keyword(index=False),
                "currency": _keyword(index=False),
            },
        },
    }


def _suggest_entries(doc: SearchDocument) -> list[str]:
    """``kind:<normalized>\\x1f<text>`` per brand, category name and title; the key order
    (normalized, then original) is the contract's tie-break order."""
    values = [("brand", doc.brand)] if doc.brand else []
    values += [("category", c) for c in dict.fromkeys(doc.category_path)]
    values.append(("title", doc.title_raw))
    return [f"{kind}:{normalize(text)}{_SUGGEST_SEP}{text}" for kind, text in values]


def _to_source(doc: SearchDocument) -> dict[str, Any]:
    """The JSON document stored for one item. Every field is present (None → null), so a
    partial ``doc`` update with it replaces the whole item."""
    return {
        "item_id": doc.item_id,
        **{name: [" ".join(v) for v in getattr(doc, name)] for name in TEXT_FIELDS},
        **{name: " ".join(getattr(doc, name)) or None for name in CHAR_FIELDS},
        CATEGORY_NAME_FIELD: list(doc.category_names),
        "category_l1": doc.category_l1,
        "category_l2": doc.category_l2,
        "category_l3": doc.category_l3,
        "category": list(doc.category),
        "brand": doc.brand,
        "tags": list(doc.tags),
        "merchant_id": doc.merchant_id,
        "suggest": _suggest_entries(doc),
        "price": doc.price,
        "stock": doc.stock,
        "in_stock": doc.in_stock,
        "is_active": doc.is_active,
        "rating": doc.rating,
        "created_at": doc.created_at.astimezone(UTC).isoformat(),
        "popularity": doc.popularity,
        "title_raw": doc.title_raw,
        "category_path": list(doc.category_path),
        "currency": doc.currency,
    }


# ---------------------------------------------------------------- query building


def _text_query(plan: QueryPlan) -> dict[str, Any]:
    """The scoring query for a plan (see `search.backend`)."""
    if plan.is_empty:
        return {"match_all": {}}
    clauses = []
    for clause in plan.clauses:
        should: list[dict[str, Any]] = []
        for alt in clause.alternatives:
            for field, weight in (CHAR_FIELDS if alt.chars else TEXT_FIELDS).items():
                boost = weight * alt.boost * SCORE_SCALE
                if len(alt.tokens) == 1:
                    should.append({"term": {field: {"value": alt.tokens[0], "boost": boost}}})
                else:
                    should.append({"match_phrase": {field: {
                        "query": " ".join(alt.tokens), "slop": 0, "boost": boost}}})
            if plan.typo_tolerance and alt.fuzzy_distance > 0:
                for field in FUZZY_FIELDS:
                    should.append({"constant_score": {
                        "filter": {"fuzzy": {field: {
                            "value": alt.tokens[0],
                            "fuzziness": alt.fuzzy_distance,
                            "prefix_length": 0,
                            "transpositions": True,
                            "rewrite": "constant_score",
                        }}},
                        "boost": FUZZY_SCORE * TEXT_FIELDS[field] * alt.boost,
                    }})
        clauses.append({"bool": {"should": should, "minimum_should_match": 1}})
    msm = plan.minimum_should_match
    if msm >= len(clauses):
        must = clauses
    else:
        must = [{"bool": {"should": clauses, "minimum_should_match": msm}}]
    if not plan.names:
        return {"bool": {"must": must}}
    names = [  # optional: adds score, never needed to match
        {"constant_score": {"filter": {"term": {CATEGORY_NAME_FIELD: key}},
                            "boost": CATEGORY_NAME_SCORE * boost}}
        for key, boost in plan.names
    ]
    return {"bool": {"must": must, "should": names}}


def _filter_clause(f: Filter) -> dict[str, Any]:
    if isinstance(f, TermsFilter):
        return {"terms": {f.field: list(f.values)}}
    if isinstance(f, BoolFilter):
        return {"term": {f.field: f.value}}
    bounds = {k: v for k, v in (("gte", f.gte), ("gt", f.gt), ("lte", f.lte), ("lt", f.lt))
              if v is not None}
    return {"range": {f.field: bounds}}


def _group_clause(filters: Sequence[Filter]) -> dict[str, Any]:
    """Filters on one field: OR-ed."""
    if len(filters) == 1:
        return _filter_clause(filters[0])
    return {"bool": {"should": [_filter_clause(f) for f in filters], "minimum_should_match": 1}}


def _and(groups: Mapping[str, Sequence[Filter]]) -> dict[str, Any] | None:
    if not groups:
        return None
    return {"bool": {"filter": [_group_clause(g) for g in groups.values()]}}


def _facet_agg(f: TermsFacet | RangeFacet, selected: set[str]) -> dict[str, Any]:
    if isinstance(f, TermsFacet):
        aggs: dict[str, Any] = {"values": {"terms": {"field": f.field, "size": f.size}}}
        if selected:
            aggs["selected"] = {"terms": {"field": f.field, "size": len(selected),
                                          "include": sorted(selected)}}
        return aggs
    ranges = []
    for i, b in enumerate(f.buckets):
        r: dict[str, Any] = {"key": str(i)}
        if b.gte is not None:
            r["from"] = b.gte
        if b.lt is not None:
            r["to"] = b.lt
        ranges.append(r)
    return {"values": {"range": {"field": f.field, "ranges": ranges, "keyed": True}}}


def search_body(request: SearchRequest, plan: QueryPlan) -> dict[str, Any]:
    """The request body our backend sends for ``request`` (also used by bench/search.py to
    time raw opensearch-py against our path)."""
    facet_fields = {f.field for f in request.facets}
    groups = request.filters_by_field()
    query_groups = {k: v for k, v in groups.items() if k not in facet_fields}
    post_groups = {k: v for k, v in groups.items() if k in facet_fields}
    query = _text_query(plan)
    if query_groups:
        query = {"bool": {"must": [query], "filter": [_group_clause(g) for g in query_groups.values()]}}
    start, count = request.window()
    body: dict[str, Any] = {
        "query": query,
        "from": start,
        "size": count,
        "track_total_hits": True,
        "sort": _SORTS[request.sort],
        "_source": list(_HIT_SOURCE),
    }
    post = _and(post_groups)
    if post is not None:
        body["post_filter"] = post
    if request.facets:
        aggs: dict[str, Any] = {}
        for f in request.facets:
            others = _and({k: v for k, v in post_groups.items() if k != f.field})
            aggs[f.field] = {
                "filter": others or {"match_all": {}},
                "aggs": _facet_agg(f, request.selected_terms(f.field)),
            }
        body["aggs"] = aggs
    return body


def _terms_values(f: TermsFacet, agg: Mapping[str, Any], selected: set[str]) -> list[FacetValue]:
    out = [FacetValue(value=str(b["key"]), count=int(b["doc_count"]), selected=str(b["key"]) in selected)
           for b in agg["values"]["buckets"] if int(b["doc_count"]) > 0]
    shown = {v.value for v in out}
    counts = {str(b["key"]): int(b["doc_count"]) for b in agg.get("selected", {}).get("buckets", [])}
    for value in sorted(selected - shown):
        out.append(FacetValue(value=value, count=counts.get(value, 0), selected=True))
    return out


def _range_values(f: RangeFacet, agg: Mapping[str, Any],
                  selected: set[tuple[float | None, float | None]]) -> list[FacetValue]:
    buckets = agg["values"]["buckets"]
    return [
        FacetValue(value=b.key, count=int(buckets.get(str(i), {}).get("doc_count", 0)),
                   selected=(b.gte, b.lt) in selected, gte=b.gte, lt=b.lt)
        for i, b in enumerate(f.buckets)
    ]


def _regex_literal(text: str) -> str:
    """Escape ``text`` for Lucene's regular expression syntax."""
    return "".join(c if c.isalnum() else "\\" + c for c in text)


# ---------------------------------------------------------------- backend


class OpenSearchBackend:
    """A `search.backend.SearchBackend` over an OpenSearch alias ``index`` at ``url``."""

    name = "opensearch"

    def __init__(
        self,
        url: str,
        *,
        index: str = "shoprank-items",
        analyzer: Analyzer | None = None,
        timeout: float = 30.0,
        read_timeout: float = 30.0,
        shards: int = 1,
        replicas: int = 0,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", index):
            raise SearchError(
                f"OpenSearch index name {index!r} is invalid: use lower-case letters, digits, "
                "'-', '_' or '.' (fix SHOPRANK_OPENSEARCH_INDEX)"
            )
        self.url = url.rstrip("/")
        self.alias = index
        self.analyzer = analyzer or default_analyzer()
        self.shards = shards
        self.replicas = replicas
        self._timeout = timeout
        self._read_timeout = read_timeout
        self._breaker = CircuitBreaker()
        self._client_obj: OpenSearch | None = None
        self._client_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------ plumbing

    @property
    def client(self) -> OpenSearch:
        """The opensearch-py client (created on first use)."""
        if self._closed:
            raise SearchError("the search backend is closed; open a new one")
        if self._client_obj is None:
            with self._client_lock:
                if self._client_obj is None:
                    from opensearchpy import OpenSearch

                    # opensearch-py logs every request at INFO; keep only its warnings.
                    logging.getLogger("opensearch").setLevel(logging.WARNING)

                    self._client_obj = OpenSearch(
                        hosts=[self.url], timeout=self._timeout, maxsize=16,
                        http_compress=False, retry_on_timeout=False,
                    )
        return self._client_obj

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an opensearch-py call through the circuit breaker, turning its errors into this
        package's errors (an unreachable or frozen node: :class:`BackendUnavailableError`)."""
        try:
            self._breaker.check()
        except CircuitOpen as exc:
            raise BackendUnavailableError(
                f"OpenSearch at {self.url} did not answer recently ({what} not tried, {exc}); "
                "check the node"
            ) from None
        try:
            out = self._translate(what, fn, *args, **kwargs)
        except BackendUnavailableError:
            self._breaker.failure()
            raise
        except BaseException:
            self._breaker.success()  # it answered, if only with an error
            raise
        self._breaker.success()
        return out

    def _translate(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from opensearchpy import exceptions as osx

        try:
            return fn(*args, **kwargs)
        except osx.NotFoundError as exc:
            if exc.error == "index_not_found_exception":
                raise IndexNotFoundError(
                    f"OpenSearch index {self.alias!r} does not exist at {self.url}; "
                    "build it with `shoprank index`"
                ) from exc
            raise
        except osx.ConnectionError as exc:
            raise BackendUnavailableError(
                f"cannot reach OpenSearch at {self.url} ({what}): start it with "
                "`scripts/opensearch start` or fix SHOPRANK_OPENSEARCH_URL"
            ) from exc
        except osx.TransportError as exc:
            raise SearchError(
                f"OpenSearch refused {what} (HTTP {exc.status_code}: {exc.error}); "
                "check the node's log"
            ) from exc

    def _indices(self, timeout: float | None = None) -> list[str]:
        """Concrete indices currently behind the alias."""
        from opensearchpy import exceptions as osx

        try:
            found = self._call("alias lookup", self.client.indices.get_alias, name=self.alias,
                               request_timeout=timeout or self._read_timeout)
        except IndexNotFoundError:
            return []
        except osx.NotFoundError:
            return []
        return sorted(found)

    def _generations(self) -> list[str]:
        """Every index this backend created for the alias, oldest first."""
        found = self._call("index listing", self.client.indices.get, index=f"{self.alias}-*",
                           allow_no_indices=True, expand_wildcards="open,closed")
        return sorted(n for n in found if re.fullmatch(re.escape(self.alias) + r"-\d{20}", n))

    def _new_index(self) -> str:
        name = f"{self.alias}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
        body = index_body(shards=self.shards, replicas=self.replicas)
        self._call("index creation", self.client.indices.create, index=name, body=body)
        return name

    def _ensure_index(self) -> str:
        """The index behind the alias, creating both when absent."""
        current = self._indices()
        if current:
            return current[0]
        name = self._new_index()
        self._call("alias creation", self.client.indices.update_aliases,
                   body={"actions": [{"add": {"index": name, "alias": self.alias}}]})
        return name

    def _actions(
        self,
        index: str,
        items: Iterable[Item],
        popularity: Mapping[str, float] | None,
        *,
        keep_popularity: bool,
    ) -> Iterator[dict[str, Any]]:
        pops = popularity or {}
        for item in items:
            if keep_popularity and item.item_id not in pops:
                source = _to_source(to_document(item, 0.0))
                doc = {k: v for k, v in source.items() if k != "popularity"}
                yield {"_op_type": "update", "_index": index, "_id": item.item_id,
                       "doc": doc, "upsert": source}
            else:
                source = _to_source(to_document(item, float(pops.get(item.item_id, 0.0))))
                yield {"_op_type": "index", "_index": index, "_id": item.item_id,
                       "_source": source}

    def _bulk(self, actions: Iterable[dict[str, Any]], progress: Progress | None) -> int:
        from opensearchpy import helpers

        n = 0
        batch = 0
        errors: list[str] = []
        # Two sender threads: one chunk is indexed by OpenSearch while the next is analysed.
        for ok, info in helpers.parallel_bulk(
            self.client, actions, thread_count=2, chunk_size=BULK_CHUNK, queue_size=2,
            raise_on_error=False, raise_on_exception=False,
        ):
            if ok:
                n += 1
                batch += 1
                if progress is not None and batch >= BULK_CHUNK:
                    progress(batch)
                    batch = 0
            elif len(errors) < 3:
                errors.append(str(next(iter(info.values()), info)))
        if progress is not None and batch:
            progress(batch)
        if errors:
            raise SearchError(f"OpenSearch rejected documents while indexing, e.g.: {errors[0]}")
        return n

    def _refresh(self, index: str) -> None:
        self._call("refresh", self.client.indices.refresh, index=index)

    # ------------------------------------------------------------ writing

    def index_items(
        self,
        items: Iterable[Item],
        *,
        popularity: Mapping[str, float] | None = None,
        progress: Progress | None = None,
    ) -> int:
        with self._write_lock:
            index = self._ensure_index()
            n = self._wrap_bulk(self._actions(index, items, popularity, keep_popularity=True),
                                progress)
            self._refresh(index)
            return n

    def _wrap_bulk(self, actions: Iterable[dict[str, Any]], progress: Progress | None) -> int:
        from opensearchpy import exceptions as osx

        try:
            return self._bulk(actions, progress)
        except osx.ConnectionError as exc:
            raise BackendUnavailableError(
                f"lost OpenSearch at {self.url} while indexing: check the node and retry"
            ) from exc

    def rebuild(
        self,
        items: Iterable[Item],
        *,
        popularity: Mapping[str, float] | None = None,
        progress: Progress | None = None,
    ) -> int:
        with self._write_lock:
            old = self._indices()
            new = self._new_index()
            try:
                self._call("settings update", self.client.indices.put_settings, index=new,
                           body={"index": {"refresh_interval": "-1"}})
                n = self._wrap_bulk(
                    self._actions(new, items, popularity, keep_popularity=False), progress)
                self._call("settings update", self.client.indices.put_settings, index=new,
                           body={"index": {"refresh_interval": None}})
                self._refresh(new)
                self._call("cluster health", self.client.cluster.health, index=new,
                           wait_for_status="yellow")
            except BaseException:
                self._drop([new])
                raise
            actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old]
            if not old and self._call("index check", self.client.indices.exists, index=self.alias):
                # A plain index squats on the alias name (made by hand or an older tool):
                # replace it in the same atomic step.
                actions.append({"remove_index": {"index": self.alias}})
            actions.append({"add": {"index": new, "alias": self.alias}})
            self._call("alias swap", self.client.indices.update_aliases, body={"actions": actions})
            stale = [g for g in self._generations() if g != new and g not in old]
            self._drop(stale)
            log.info("OpenSearch index rebuilt: %d items in %s (alias %s)", n, new, self.alias)
            return n

    def _drop(self, indices: Sequence[str]) -> None:
        for name in indices:
            try:
                self._call("index deletion", self.client.indices.delete, index=name,
                           ignore_unavailable=True)
            except SearchError as exc:  # best effort: a leftover index only costs disk
                log.warning("could not delete old index %s: %s", name, exc)

    def upsert(self, items: Sequence[Item], *, popularity: Mapping[str, float] | None = None) -> int:
        with self._write_lock:
            index = self._ensure_index()
            n = self._wrap_bulk(self._actions(index, items, popularity, keep_popularity=True), None)
            self._refresh(index)
            return n

    def delete(self, item_ids: Sequence[str]) -> int:
        from opensearchpy import exceptions as osx
        from opensearchpy import helpers

        if not item_ids:
            return 0
        with self._write_lock:
            index = self._ensure_index()
            actions = ({"_op_type": "delete", "_index": index, "_id": i} for i in dict.fromkeys(item_ids))
            n = 0
            try:
                for ok, _info in helpers.streaming_bulk(self.client, actions, chunk_size=BULK_CHUNK,
                                                        raise_on_error=False):
                    n += int(ok)  # a delete of an unknown id comes back as "not_found"
            except osx.ConnectionError as exc:
                raise BackendUnavailableError(
                    f"lost OpenSearch at {self.url} while deleting: check the node and retry"
                ) from exc
            self._refresh(index)
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
        from opensearchpy import exceptions as osx

        doc: dict[str, Any] = {}
        if price is not None:
            doc["price"] = float(price)
        if stock is not None:
            doc["stock"] = int(stock)
            doc["in_stock"] = stock > 0
        if is_active is not None:
            doc["is_active"] = bool(is_active)
        if popularity is not None:
            doc["popularity"] = float(popularity)
        with self._write_lock:
            index = self._ensure_index()
            try:
                if doc:
                    self._call("partial update", self.client.update, index=index, id=item_id,
                               body={"doc": doc}, refresh="true", retry_on_conflict=3)
                else:
                    self._call("lookup", self.client.get, index=index, id=item_id,
                               _source=False)
            except osx.NotFoundError:
                return False
            return True

    # ------------------------------------------------------------ reading

    def count(self) -> int:
        try:
            return int(self._call("count", self.client.count, index=self.alias,
                                  request_timeout=self._read_timeout)["count"])
        except IndexNotFoundError:
            return 0

    def health(self) -> bool:
        try:
            status = self._call("cluster health", self.client.cluster.health,
                                request_timeout=min(self._read_timeout, 0.45))["status"]
            return status in ("green", "yellow") and bool(self._indices(timeout=0.45))
        except SearchError:
            return False

    def close(self) -> None:
        self._closed = True
        client, self._client_obj = self._client_obj, None
        if client is not None:
            client.close()

    def search_body(self, request: SearchRequest) -> dict[str, Any]:
        """The body `search` sends for ``request``."""
        plan = self.analyzer.plan(request.text, typo_tolerance=request.typo_tolerance)
        return search_body(request, plan)

    def search(self, request: SearchRequest) -> SearchResult:
        t0 = time.perf_counter()
        plan = self.analyzer.plan(request.text, typo_tolerance=request.typo_tolerance)
        body = search_body(request, plan)
        resp = self._call("search", self.client.search, index=self.alias, body=body,
                          request_timeout=self._read_timeout)
        relevance = request.sort == "relevance"
        hl = Highlighter(plan)  # one per request: remembers token decisions across hits
        hits = []
        for h in resp["hits"]["hits"]:
            src = h["_source"]
            rating = src.get("rating")
            hits.append(SearchHit.build(  # highlighted on first use, as the embedded backend
                hl.html,
                item_id=src["item_id"],
                score=float(h["_score"] or 0.0) if relevance else 0.0,
                title=src["title_raw"],
                brand=src.get("brand"),
                category=tuple(src.get("category_path") or ()),
                price=float(src["price"]),
                currency=src.get("currency") or "CNY",
                stock=int(src.get("stock") or 0),
                rating=float(rating) if rating is not None else None,
                popularity=float(src.get("popularity") or 0.0),
            ))
        facets: dict[str, list[FacetValue]] = {}
        aggs = resp.get("aggregations", {})
        for f in request.facets:
            agg = aggs[f.field]
            if isinstance(f, TermsFacet):
                facets[f.field] = _terms_values(f, agg, request.selected_terms(f.field))
            else:
                facets[f.field] = _range_values(f, agg, request.selected_ranges(f.field))
        return SearchResult(
            hits=hits,
            total=int(resp["hits"]["total"]["value"]),
            offset=request.window()[0],
            facets=facets,
            took_ms=(time.perf_counter() - t0) * 1000,
            backend=self.name,
        )

    def suggest(self, prefix: str, size: int = 10) -> list[Suggestion]:
        p = normalize(prefix).strip()
        if not p or size < 1:
            return []
        aggs = {
            kind: {"terms": {
                "field": "suggest",
                "size": size,
                "include": f"{_regex_literal(kind + ':' + p)}.*",
                "order": [{"_count": "desc"}, {"_key": "asc"}],
                # only the matching documents' terms are checked against the regex
                "execution_hint": "map",
            }}
            for kind in _SUGGEST_KINDS
        }
        query = {"bool": {
            "filter": [{"term": {"is_active": True}}],
            "should": [{"prefix": {"suggest": f"{kind}:{p}"}} for kind in _SUGGEST_KINDS],
            "minimum_should_match": 1,
        }}
        body = {"size": 0, "query": query, "aggs": aggs}
        resp = self._call("suggest", self.client.search, index=self.alias, body=body,
                          request_timeout=self._read_timeout)
        out: list[Suggestion] = []
        for kind in _SUGGEST_KINDS:
            for b in resp["aggregations"][kind]["buckets"]:
                text = str(b["key"]).split(_SUGGEST_SEP, 1)[1]
                out.append(Suggestion(text=text, kind=kind, count=int(b["doc_count"])))
        return out[:size]
