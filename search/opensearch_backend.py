"""The OpenSearch search backend (opensearch-py). With `search.opensearch_bulk`, the only modules
that import opensearchpy.

It follows the reference semantics in `search.backend`, so it answers like the embedded
tantivy backend:

* Analysis happens in Python (`search.analysis`): traditional → simplified, NFKC, lower-case,
  CJK character bigrams, light English stemming. The text fields ``title``, ``meta`` and
  ``description`` hold those tokens, space-joined, under OpenSearch's ``whitespace``
  analyzer (one array entry per value, ``position_increment_gap`` = `POSITION_GAP`). Doing
  it once in Python, rather than with ``cjk_bigram``/``stemmer`` filters inside OpenSearch,
  is what makes both backends find the same items; synonyms are expanded into the query
  plan from the same merchandiser-edited file (`search.analysis.Analyzer`).
* Text query and multi-select facets: `search.opensearch_body` builds the bodies.
* Index lifecycle: documents live in ``<alias>-<timestamp>`` indices behind the alias
  ``index``. `OpenSearchBackend.rebuild` loads a new index with refresh off, refreshes it,
  swaps the alias atomically (one ``_aliases`` call), and deletes indices older than the one
  it replaced: the replaced one is kept until the next rebuild, so a search that resolved the
  alias just before the swap never lands on a deleted index.
* Budgets: every call has a request timeout — reads ``read_timeout``, writes (a bulk chunk,
  refresh, index creation and deletion, alias changes) ``write_timeout`` — and goes through
  the circuit breaker, so a frozen node costs a caller one budget and then nothing while the
  breaker is open (`BackendUnavailableError`; serving queues catalog changes for retry).
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
from data.text import normalize
from search.analysis import Analyzer, QueryPlan, default_analyzer
from search.backend import (
    Progress,
)
from search.breaker import CircuitBreaker, CircuitOpen
from search.document import to_document
from search.errors import BackendUnavailableError, IndexNotFoundError, SearchError
from search.highlight import Highlighter
from search.opensearch_body import (
    SUGGEST_KINDS,
    SUGGEST_SEP,
    index_body,
    range_values,
    regex_literal,
    search_body,
    terms_values,
    to_source,
)
from search.opensearch_bulk import bulk_send
from search.query import (
    SearchRequest,
    TermsFacet,
)
from search.result import FacetValue, SearchHit, SearchResult, Suggestion

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

BULK_CHUNK = 1000
GENERATION_TTL_SECONDS = 2.0


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
        write_timeout: float = 30.0,
        bulk_chunk: int = BULK_CHUNK,
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
        self._write_timeout = write_timeout
        self._bulk_chunk = bulk_chunk
        self._breaker = CircuitBreaker()
        self._client_obj: OpenSearch | None = None
        self._client_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = False
        self._generation: tuple[str, float] | None = None

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
        except osx.ConnectionTimeout as exc:
            raise BackendUnavailableError(
                f"OpenSearch at {self.url} did not answer {what} within its budget (a frozen "
                "or overloaded node): check the node"
            ) from exc
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

    def generation(self) -> str:
        """The concrete index behind the alias (changes with every `rebuild`); looked up at
        most every `GENERATION_TTL_SECONDS`, '' when there is no index."""
        now = time.monotonic()
        cached = self._generation
        if cached is not None and now - cached[1] < GENERATION_TTL_SECONDS:
            return cached[0]
        found = self._indices()
        name = found[0] if found else ""
        self._generation = (name, now)
        return name

    def _generations(self) -> list[str]:
        """Every index this backend created for the alias, oldest first."""
        found = self._call("index listing", self.client.indices.get, index=f"{self.alias}-*",
                           allow_no_indices=True, expand_wildcards="open,closed",
                           request_timeout=self._read_timeout)
        return sorted(n for n in found if re.fullmatch(re.escape(self.alias) + r"-\d{20}", n))

    def _new_index(self) -> str:
        name = f"{self.alias}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
        body = index_body(shards=self.shards, replicas=self.replicas)
        self._call("index creation", self.client.indices.create, index=name, body=body,
                   request_timeout=self._write_timeout)
        return name

    def _ensure_index(self) -> str:
        """The index behind the alias, creating both when absent."""
        current = self._indices()
        if current:
            return current[0]
        name = self._new_index()
        self._call("alias creation", self.client.indices.update_aliases,
                   body={"actions": [{"add": {"index": name, "alias": self.alias}}]},
                   request_timeout=self._write_timeout)
        self._generation = None
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
                source = to_source(to_document(item, 0.0))
                doc = {k: v for k, v in source.items() if k != "popularity"}
                yield {"_op_type": "update", "_index": index, "_id": item.item_id,
                       "doc": doc, "upsert": source}
            else:
                source = to_source(to_document(item, float(pops.get(item.item_id, 0.0))))
                yield {"_op_type": "index", "_index": index, "_id": item.item_id,
                       "_source": source}

    def _bulk(self, actions: Iterable[dict[str, Any]], progress: Progress | None) -> int:
        return bulk_send(self.client, actions, chunk_size=self._bulk_chunk,
                         timeout=self._write_timeout, progress=progress)

    def _refresh(self, index: str) -> None:
        self._call("refresh", self.client.indices.refresh, index=index,
                   request_timeout=self._write_timeout)

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
        """:meth:`_bulk` through the circuit breaker, each chunk within the write budget."""
        return self._call("bulk indexing", self._bulk, actions, progress)

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
                           body={"index": {"refresh_interval": "-1"}},
                           request_timeout=self._write_timeout)
                n = self._wrap_bulk(
                    self._actions(new, items, popularity, keep_popularity=False), progress)
                self._call("settings update", self.client.indices.put_settings, index=new,
                           body={"index": {"refresh_interval": None}},
                           request_timeout=self._write_timeout)
                self._refresh(new)
                self._call("cluster health", self.client.cluster.health, index=new,
                           wait_for_status="yellow", timeout=f"{self._write_timeout:g}s",
                           request_timeout=self._write_timeout + 1)
            except BaseException:
                self._drop([new])
                raise
            actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": self.alias}} for i in old]
            if not old and self._call("index check", self.client.indices.exists, index=self.alias,
                                      request_timeout=self._read_timeout):
                # A plain index squats on the alias name (made by hand or an older tool):
                # replace it in the same atomic step.
                actions.append({"remove_index": {"index": self.alias}})
            actions.append({"add": {"index": new, "alias": self.alias}})
            self._call("alias swap", self.client.indices.update_aliases, body={"actions": actions},
                       request_timeout=self._write_timeout)
            stale = [g for g in self._generations() if g != new and g not in old]
            self._drop(stale)
            self._generation = None  # this process sees the new index at once
            log.info("OpenSearch index rebuilt: %d items in %s (alias %s)", n, new, self.alias)
            return n

    def _drop(self, indices: Sequence[str]) -> None:
        for name in indices:
            try:
                self._call("index deletion", self.client.indices.delete, index=name,
                           ignore_unavailable=True, request_timeout=self._write_timeout)
            except SearchError as exc:  # best effort: a leftover index only costs disk
                log.warning("could not delete old index %s: %s", name, exc)

    def upsert(self, items: Sequence[Item], *, popularity: Mapping[str, float] | None = None) -> int:
        with self._write_lock:
            index = self._ensure_index()
            n = self._wrap_bulk(self._actions(index, items, popularity, keep_popularity=True), None)
            self._refresh(index)
            return n

    def delete(self, item_ids: Sequence[str]) -> int:
        from opensearchpy import helpers

        if not item_ids:
            return 0

        def send(actions: Iterable[dict[str, Any]]) -> int:
            n = 0
            for ok, _info in helpers.streaming_bulk(
                self.client, actions, chunk_size=self._bulk_chunk, raise_on_error=False,
                request_timeout=self._write_timeout,
            ):
                n += int(ok)  # a delete of an unknown id comes back as "not_found"
            return n

        with self._write_lock:
            index = self._ensure_index()
            actions = ({"_op_type": "delete", "_index": index, "_id": i} for i in dict.fromkeys(item_ids))
            n = self._call("bulk deletion", send, actions)
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
                               body={"doc": doc}, refresh="true", retry_on_conflict=3,
                               request_timeout=self._write_timeout)
                else:
                    self._call("lookup", self.client.get, index=index, id=item_id,
                               _source=False, request_timeout=self._read_timeout)
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

    def search(self, request: SearchRequest, plan: QueryPlan | None = None) -> SearchResult:
        t0 = time.perf_counter()
        if plan is None:
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
                facets[f.field] = terms_values(f, agg, request.selected_terms(f.field))
            else:
                facets[f.field] = range_values(f, agg, request.selected_ranges(f.field))
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
                "include": f"{regex_literal(kind + ':' + p)}.*",
                "order": [{"_count": "desc"}, {"_key": "asc"}],
                # only the matching documents' terms are checked against the regex
                "execution_hint": "map",
            }}
            for kind in SUGGEST_KINDS
        }
        query = {"bool": {
            "filter": [{"term": {"is_active": True}}],
            "should": [{"prefix": {"suggest": f"{kind}:{p}"}} for kind in SUGGEST_KINDS],
            "minimum_should_match": 1,
        }}
        body = {"size": 0, "query": query, "aggs": aggs}
        resp = self._call("suggest", self.client.search, index=self.alias, body=body,
                          request_timeout=self._read_timeout)
        out: list[Suggestion] = []
        for kind in SUGGEST_KINDS:
            for b in resp["aggregations"][kind]["buckets"]:
                text = str(b["key"]).split(SUGGEST_SEP, 1)[1]
                out.append(Suggestion(text=text, kind=kind, count=int(b["doc_count"])))
        return out[:size]
