"""The embedded backend's fuzzy expansion finds what tantivy's own fuzzy query finds."""

from __future__ import annotations

import pytest

from search.analysis import Analyzer
from search.backend import FUZZY_FIELDS
from search.tantivy_backend import TantivyBackend
from search.tantivy_query import fuzzy_terms
from tests.search import catalog

TYPOS = [
    "dreses",
    "sneekers",
    "headphnoes",
    "red",
    "blu",
    "denin",
    "levi",
    "runing",
    "shrts",
    "xyzzy",
]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, analyzer: Analyzer) -> TantivyBackend:
    b = TantivyBackend(tmp_path_factory.mktemp("fuzzy") / "idx", analyzer=analyzer)
    b.index_items(catalog.items())
    return b


@pytest.mark.parametrize("token", TYPOS)
def test_expansion_matches_the_engines_fuzzy_query(backend: TantivyBackend, token: str) -> None:
    import tantivy

    from data.text import fuzzy_distance

    gen = backend._gens.live()
    searcher = gen.index.searcher()
    vocab = backend._vocabulary(gen, searcher, backend._gens.version(gen))
    d = max(1, fuzzy_distance(token))
    for field in FUZZY_FIELDS:
        engine = tantivy.Query.fuzzy_term_query(backend._schema, field, token, d, True, False)
        terms = fuzzy_terms(vocab, field, token, d)
        ours = tantivy.Query.term_set_query(backend._schema, field, list(terms)) if terms else None
        want = {a.doc for _, a in searcher.search(engine, limit=100).hits}
        got = {a.doc for _, a in searcher.search(ours, limit=100).hits} if ours else set()
        assert got == want, (token, field, terms)
    if token == "dreses":
        assert "dress" in fuzzy_terms(vocab, "title", token, d)
