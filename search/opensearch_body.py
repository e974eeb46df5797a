"""OpenSearch request bodies for the OpenSearch backend: the index mapping, a document's
source, and the search body of a request and its `search.analysis.QueryPlan`.

* Text query: one ``bool`` per plan clause (term or exact phrase per alternative and field,
  boosted by field weight × alternative boost × (1 + k1) so scores are on tantivy's BM25
  scale; with typo tolerance a ``constant_score`` fuzzy query in `FUZZY_FIELDS`; a
  one-character alternative in `CHAR_FIELDS`), ``minimum_should_match`` of the plan over the
  clauses, plus an optional ``constant_score`` term on `CATEGORY_NAME_FIELD` per plan name.
* Multi-select facets: filters on fields that are not requested facets go into the query;
  filters on requested facet fields go into ``post_filter``; each facet's aggregation is
  wrapped in a ``filter`` aggregation with every post-filter except its own field's.

Plain data in, plain data out: no client here (`search.opensearch_backend` sends them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

from data.text import normalize
from search.analysis import QueryPlan
from search.backend import (
    CATEGORY_NAME_FIELD,
    CATEGORY_NAME_SCORE,
    CHAR_FIELDS,
    FUZZY_FIELDS,
    FUZZY_SCORE,
    TEXT_FIELDS,
)
from search.document import POSITION_GAP, SearchDocument
from search.query import (
    BoolFilter,
    RangeFacet,
    RangeFilter,
    SearchRequest,
    TermsFacet,
    TermsFilter,
)
from search.result import FacetValue

BM25_K1 = 1.2
BM25_B = 0.75
SCORE_SCALE = 1.0 + BM25_K1
"""Lucene's BM25 drops the constant (k1 + 1) factor that tantivy keeps; boosting by it puts
both engines' scores (and so the fixed fuzzy score next to them) on one scale."""
SUGGEST_KINDS = ("brand", "category", "title")
SUGGEST_SEP = "\x1f"
_HIT_SOURCE = (
    "item_id",
    "title_raw",
    "brand",
    "category_path",
    "price",
    "currency",
    "stock",
    "rating",
    "popularity",
)
_SORTS: dict[str, list[Any]] = {
    "relevance": ["_score", {"item_id": "asc"}],
    "price_asc": [{"price": "asc"}, {"item_id": "asc"}],
    "price_desc": [{"price": "desc"}, {"item_id": "asc"}],
    "newest": [{"created_at": "desc"}, {"item_id": "asc"}],
    "popularity": [{"popularity": "desc"}, {"item_id": "asc"}],
}

Filter = TermsFilter | RangeFilter | BoolFilter


def _keyword(*, index: bool = True) -> dict[str, Any]:
    return (
        {"type": "keyword"} if index else {"type": "keyword", "index": False, "doc_values": False}
    )


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
                **{
                    name: {"type": "text", "analyzer": "whitespace", "index_options": "freqs"}
                    for name in CHAR_FIELDS
                },
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
    return [f"{kind}:{normalize(text)}{SUGGEST_SEP}{text}" for kind, text in values]


def to_source(doc: SearchDocument) -> dict[str, Any]:
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
                    should.append(
                        {
                            "match_phrase": {
                                field: {"query": " ".join(alt.tokens), "slop": 0, "boost": boost}
                            }
                        }
                    )
            if plan.typo_tolerance and alt.fuzzy_distance > 0:
                for field in FUZZY_FIELDS:
                    should.append(
                        {
                            "constant_score": {
                                "filter": {
                                    "fuzzy": {
                                        field: {
                                            "value": alt.tokens[0],
                                            "fuzziness": alt.fuzzy_distance,
                                            "prefix_length": 0,
                                            "transpositions": True,
                                            "rewrite": "constant_score",
                                        }
                                    }
                                },
                                "boost": FUZZY_SCORE * TEXT_FIELDS[field] * alt.boost,
                            }
                        }
                    )
        clauses.append({"bool": {"should": should, "minimum_should_match": 1}})
    msm = plan.minimum_should_match
    if msm >= len(clauses):
        must = clauses
    else:
        must = [{"bool": {"should": clauses, "minimum_should_match": msm}}]
    if not plan.names:
        return {"bool": {"must": must}}
    names = [  # optional: adds score, never needed to match
        {
            "constant_score": {
                "filter": {"term": {CATEGORY_NAME_FIELD: key}},
                "boost": CATEGORY_NAME_SCORE * boost,
            }
        }
        for key, boost in plan.names
    ]
    return {"bool": {"must": must, "should": names}}


def _filter_clause(f: Filter) -> dict[str, Any]:
    if isinstance(f, TermsFilter):
        return {"terms": {f.field: list(f.values)}}
    if isinstance(f, BoolFilter):
        return {"term": {f.field: f.value}}
    bounds = {
        k: v
        for k, v in (("gte", f.gte), ("gt", f.gt), ("lte", f.lte), ("lt", f.lt))
        if v is not None
    }
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
            aggs["selected"] = {
                "terms": {"field": f.field, "size": len(selected), "include": sorted(selected)}
            }
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
        query = {
            "bool": {"must": [query], "filter": [_group_clause(g) for g in query_groups.values()]}
        }
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


def terms_values(f: TermsFacet, agg: Mapping[str, Any], selected: set[str]) -> list[FacetValue]:
    out = [
        FacetValue(
            value=str(b["key"]), count=int(b["doc_count"]), selected=str(b["key"]) in selected
        )
        for b in agg["values"]["buckets"]
        if int(b["doc_count"]) > 0
    ]
    shown = {v.value for v in out}
    counts = {
        str(b["key"]): int(b["doc_count"]) for b in agg.get("selected", {}).get("buckets", [])
    }
    for value in sorted(selected - shown):
        out.append(FacetValue(value=value, count=counts.get(value, 0), selected=True))
    return out


def range_values(
    f: RangeFacet, agg: Mapping[str, Any], selected: set[tuple[float | None, float | None]]
) -> list[FacetValue]:
    buckets = agg["values"]["buckets"]
    return [
        FacetValue(
            value=b.key,
            count=int(buckets.get(str(i), {}).get("doc_count", 0)),
            selected=(b.gte, b.lt) in selected,
            gte=b.gte,
            lt=b.lt,
        )
        for i, b in enumerate(f.buckets)
    ]


def regex_literal(text: str) -> str:
    """Escape ``text`` for Lucene's regular expression syntax."""
    return "".join(c if c.isalnum() else "\\" + c for c in text)
