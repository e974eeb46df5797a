"""Query building for the embedded backend: a `search.analysis.QueryPlan` and typed filters
→ tantivy queries, and the fuzzy vocabulary (Latin terms of the fuzzy fields) of one index
state, from which typo-tolerant words are expanded to the indexed terms within their
distance (`fuzzy_terms`).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from data.text import is_cjk
from search.analysis import QueryPlan
from search.backend import (
    CATEGORY_NAME_FIELD,
    CATEGORY_NAME_SCORE,
    CHAR_FIELDS,
    FUZZY_FIELDS,
    FUZZY_SCORE,
    TEXT_FIELDS,
)
from search.query import BoolFilter, RangeFilter, TermsFilter

if TYPE_CHECKING:
    import tantivy

_FUZZY_CACHE_SIZE = 50_000


@dataclass
class Vocabulary:
    """Latin terms of the `FUZZY_FIELDS` by length, and the fuzzy expansions computed so far,
    for one state (``version``) of the index."""

    version: int
    terms: dict[str, tuple[list[str], list[int]]]
    """Field → (its Latin terms sorted by length, index of the first term of each length)."""
    expansions: dict[tuple[str, str, int], tuple[str, ...]]


def read_vocabulary(
    searcher: tantivy.Searcher, version: int, previous: Vocabulary | None
) -> Vocabulary:
    """The fuzzy vocabulary of index state ``version`` (read from ``searcher``, opened after
    that state); the expansions of ``previous`` carry over when its terms are unchanged."""
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
    same = previous is not None and previous.terms == terms
    return Vocabulary(version, terms, previous.expansions if same and previous else {})


def fuzzy_terms(vocab: Vocabulary, field: str, token: str, distance: int) -> tuple[str, ...]:
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


class QueryBuilder:
    """Builds the queries of one index schema."""

    def __init__(self, schema: tantivy.Schema) -> None:
        self._schema = schema

    def text_query(self, plan: QueryPlan, vocab: Vocabulary | None = None) -> tantivy.Query:
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
                            for t in fuzzy_terms(vocab, field, *fuzzy)
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

    def filter_query(self, f: TermsFilter | RangeFilter | BoolFilter) -> tantivy.Query:
        """One filter as a query (matching only; the caller makes it score nothing)."""
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

    def query(
        self,
        text_q: tantivy.Query,
        groups: Mapping[str, Sequence[TermsFilter | RangeFilter | BoolFilter]],
    ) -> tantivy.Query:
        """``text_q`` with the filters: AND across fields, OR within a field, no score."""
        import tantivy

        Q, Occur = tantivy.Query, tantivy.Occur
        if not groups:
            return text_q
        parts = [(Occur.Must, text_q)]
        for filters in groups.values():
            if len(filters) == 1:
                fq = self.filter_query(filters[0])
            else:
                fq = Q.boolean_query([(Occur.Should, self.filter_query(f)) for f in filters])
            parts.append((Occur.Must, Q.const_score_query(fq, 0.0)))
        return Q.boolean_query(parts)


def _int_bounds(f: RangeFilter) -> tuple[int | None, int | None, bool, bool]:
    """Integer bounds of a range over an integer field, all inclusive."""
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
