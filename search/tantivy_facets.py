"""Facet counts on the embedded backend: the aggregations a request's facets need (one pass
in the common cases), their buckets read back as `search.result.FacetValue`, and the hit
total they count on the way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search.query import RangeFacet, RangeFilter, SearchRequest, TermsFacet, TermsFilter
from search.result import FacetValue
from search.tantivy_query import QueryBuilder

if TYPE_CHECKING:
    import tantivy

_TERMS_AGG_SIZE = 65_000
_TOTAL_AGG = "_total"
Facets = tuple[dict[str, list[FacetValue]], int]
"""Facet values by field, and the number of hits."""
FACET_CACHE_SIZE = 2048
"""Facet counts (and hit totals) kept per backend for repeated text + filters, dropped
whenever the index changes."""


def compute_facets(
    searcher: tantivy.Searcher,
    request: SearchRequest,
    text_q: tantivy.Query,
    full_query: tantivy.Query,
    queries: QueryBuilder,
) -> Facets:
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
        q = queries.query(text_q, request.filters_by_field(excluding=field))
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
            q = queries.query(text_q, request.filters_by_field(excluding=f.field))
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


def _terms_values(
    f: TermsFacet, buckets: list[dict[str, Any]], selected: set[str]
) -> list[FacetValue]:
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
