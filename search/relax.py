"""Zero-result recovery: the order in which a query that found too little is loosened.

`relaxations` yields looser plans one step at a time; `search.engine.SearchEngine` runs
each until one finds at least ``min_results`` items. Every step keeps what the earlier ones
did. The order, and why:

1. ``spelling`` — Latin words the catalog does not hold (``sneekers``, ``drses``) are
   replaced by the nearest word of the catalog or of the synonym and variant lists (one edit
   up to 5 letters, else two; the more frequent word wins ties). First, because a
   misspelt word would otherwise look uninformative to step 2 and be dropped, leaving
   ``red`` of ``red sneekers`` to find every red thing.
2. ``drop_unknown`` — words that match no item on their own (with the request's filters)
   are dropped: ``something``, ``大尺碼`` where sizes are not in the catalog. They carry no
   information about this catalog, so they are the least informative words.
3. ``drop_brand_colour`` — the brand and colour words are dropped: a brand that has no
   running shoes, asked for running shoes, answers with running shoes.
4. ``any_word`` — an item matching any one remaining word is a hit; items matching more
   words score higher (BM25 sums over clauses).

The corrections of step 1 are also the "did you mean" suggestion (`suggestion`), shown
even when the strict query found something. `relax` runs the steps against a backend.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, replace

from data.text import edit_distance, is_cjk, stem
from search.analysis import Analyzer, QueryPlan
from search.backend import SearchBackend
from search.memo import StateMemo
from search.query import SearchRequest
from search.result import Relaxation, SearchResult

COLOUR_WORDS = frozenset(
    [
        "red",
        "black",
        "white",
        "blue",
        "pink",
        "green",
        "gray",
        "grey",
        "yellow",
        "purple",
        "beige",
        "orange",
        "brown",
        "navy",
        "silver",
        "gold",
    ]
)
"""English colour words; Chinese colour words reach them through the variants list."""

_LATIN = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Step:
    name: str
    plan: QueryPlan
    dropped: tuple[str, ...]
    corrected: Mapping[str, str]


class Speller:
    """Nearest known word for a Latin word: the catalog's words (with their document
    frequencies) and the synonym table's Latin words."""

    def __init__(self, lexicon: Mapping[str, int], analyzer: Analyzer) -> None:
        vocab = dict(lexicon)
        for key, variants in analyzer.synonyms.table.items():
            for words in (key, *variants):
                for w in words:
                    if w.isalpha() and not is_cjk(w):
                        vocab.setdefault(w, 1)
        self.vocab = vocab
        self._by_first: dict[str, list[tuple[str, int]]] = {}
        for w, n in vocab.items():
            self._by_first.setdefault(w[:1], []).append((w, n))
        self._cache: dict[str, str | None] = {}

    def known(self, word: str) -> bool:
        return word in self.vocab or stem(word) in self.vocab

    def nearest(self, word: str) -> str | None:
        """The known word nearest ``word`` (raw or stemmed form), or None."""
        if word in self._cache:
            return self._cache[word]
        best: tuple[int, int, str] | None = None
        if len(word) >= 4 and not self.known(word):
            forms = {word, stem(word)}
            # the first letter is rarely wrong; two first letters cover a swap there
            pool = self._by_first.get(word[0], []) + self._by_first.get(word[1:2], [])
            for form in forms:
                limit = 1 if len(form) <= 5 else 2
                for cand, n in pool:
                    if abs(len(cand) - len(form)) > limit:
                        continue
                    d = edit_distance(form, cand, limit)
                    if d <= limit and (best is None or (d, -n, cand) < best):
                        best = (d, -n, cand)
        got = best[2] if best is not None else None
        if len(self._cache) < 10_000:
            self._cache[word] = got
        return got

    def corrections(self, text: str) -> dict[str, str]:
        """Typed Latin word → nearest known word, for the words not known."""
        folded = unicodedata.normalize("NFKC", text).lower()
        out: dict[str, str] = {}
        for w in _LATIN.findall(folded):
            if w not in out and not self.known(w):
                got = self.nearest(w)
                if got is not None and got != stem(w):
                    out[w] = got
        return out


def corrected_text(text: str, corrections: Mapping[str, str]) -> str:
    folded = unicodedata.normalize("NFKC", text).lower()
    if not corrections:
        return folded
    return _LATIN.sub(lambda m: corrections.get(m.group(0), m.group(0)), folded)


def _is_colour(clause_alts: tuple[tuple[str, ...], ...]) -> bool:
    return any(len(t) == 1 and t[0] in COLOUR_WORDS for t in clause_alts)


def relaxations(
    text: str,
    strict: QueryPlan,
    *,
    analyzer: Analyzer,
    speller: Speller | None,
    brands: Callable[[], set[str]],
    count: Callable[[QueryPlan, bool], int],
) -> Iterator[Step]:
    """Looser plans for ``text`` in the documented order (each includes the ones before).
    ``brands`` gives the catalog's brands as query-word keys; ``count(plan, final)`` the
    number of hits of a plan with the request's filters, where ``final`` says that the plan
    is the next step's plan if it finds anything (the caller may run the full search then
    and keep its result)."""
    plan = strict
    dropped: list[str] = []
    corrected: dict[str, str] = {}
    if speller is not None:
        corrected = speller.corrections(text)
        if corrected:
            plan = analyzer.plan(
                corrected_text(text, corrected), typo_tolerance=strict.typo_tolerance
            )
            yield Step("spelling", plan, (), dict(corrected))
    if len(plan.clauses) > 1:
        # each word alone (the names only add score: they never change what matches); when
        # every word before the last matched nothing, the last alone is the step's plan
        alone: list[int] = []
        for i, c in enumerate(plan.clauses):
            final = i == len(plan.clauses) - 1 and not any(alone)
            alone.append(count(replace(plan, clauses=(c,), any_clause=False), final))
        if any(alone) and not all(alone):
            dropped += [c.source for c, n in zip(plan.clauses, alone, strict=True) if n == 0]
            keep = tuple(c for c, n in zip(plan.clauses, alone, strict=True) if n > 0)
            plan = replace(plan, clauses=keep)
            yield Step("drop_unknown", plan, tuple(dropped), dict(corrected))
    if len(plan.clauses) > 1:
        brand_keys = brands()
        constraint = [
            c
            for c in plan.clauses
            if c.source in brand_keys or _is_colour(tuple(a.tokens for a in c.alternatives))
        ]
        if constraint and len(constraint) < len(plan.clauses):
            dropped += [c.source for c in constraint]
            plan = replace(plan, clauses=tuple(c for c in plan.clauses if c not in constraint))
            yield Step("drop_brand_colour", plan, tuple(dropped), dict(corrected))
    if len(plan.clauses) > 1:
        plan = replace(plan, any_clause=True)
        yield Step("any_word", plan, tuple(dropped), dict(corrected))


@dataclass(frozen=True)
class Relaxed:
    """How a query was relaxed: the plan that answered it (None: nothing did) and what the
    response says about it."""

    plan: QueryPlan | None
    relaxation: Relaxation | None


def relax(
    backend: SearchBackend,
    req: SearchRequest,
    text: str,
    strict: QueryPlan,
    *,
    analyzer: Analyzer,
    speller: Speller | None,
    brands: Callable[[], set[str]],
    counts: StateMemo[int],
    state: Hashable,
    min_results: int,
) -> tuple[Relaxed, SearchResult | None]:
    """The first of `relaxations` that finds at least ``min_results`` items for ``req``, and
    its result; or (no plan, None). Counts of words alone are remembered in ``counts`` for
    index ``state``."""
    count_req = req.model_copy(update={"facets": (), "size": 1, "page": 1, "rerank_depth": None})
    full: dict[QueryPlan, SearchResult] = {}

    def count(plan: QueryPlan, final: bool) -> int:
        key = (plan, req.filters, req.include_inactive)
        n = counts.get(state, key)
        if n is None:
            if final:  # the next step's plan if it finds anything: search it in full
                full[plan] = backend.search(req, plan)
                n = full[plan].total
            else:
                n = backend.search(count_req, plan).total
            counts.put(state, key, n)
        return n

    steps: list[str] = []
    for step in relaxations(
        text, strict, analyzer=analyzer, speller=speller, brands=brands, count=count
    ):
        steps.append(step.name)
        # the full request at once: a step that finds nothing costs what a count would (the
        # embedded backend skips the top-k when its aggregation counted no hit), and one that
        # finds enough is not evaluated twice
        got = full.get(step.plan) or backend.search(req, step.plan)
        if got.total >= min_results:
            relaxation = Relaxation(
                steps=tuple(steps),
                dropped=step.dropped,
                corrected=dict(step.corrected),
                query=" ".join(c.source for c in step.plan.clauses),
            )
            return Relaxed(step.plan, relaxation), got
    return Relaxed(None, None), None
