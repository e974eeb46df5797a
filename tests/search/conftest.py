"""Fixtures for the search contract tests: every backend runs the same tests.

``backend_kind`` is parameterized over the embedded (tantivy) backend, always, and the
OpenSearch backend, marked ``opensearch`` (it uses the ``opensearch_url`` session fixture).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from search.analysis import Analyzer, parse_synonyms
from search.backend import SearchBackend
from tests.search import catalog

BACKENDS = [
    pytest.param("embedded", id="embedded"),
    pytest.param("opensearch", id="opensearch", marks=pytest.mark.opensearch),
]

BackendFactory = Callable[[], SearchBackend]


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    return Analyzer(parse_synonyms(catalog.SYNONYMS.splitlines(), "test synonyms"))


def _factory(
    kind: str, request: pytest.FixtureRequest, root: Path, analyzer: Analyzer
) -> tuple[BackendFactory, list[SearchBackend]]:
    made: list[SearchBackend] = []

    if kind == "embedded":
        from search.tantivy_backend import TantivyBackend

        def make() -> SearchBackend:
            b = TantivyBackend(root / uuid.uuid4().hex, analyzer=analyzer)
            made.append(b)
            return b
    else:
        url = request.getfixturevalue("opensearch_url")
        from search.opensearch_backend import OpenSearchBackend

        def make() -> SearchBackend:
            b = OpenSearchBackend(
                url, index=f"shoprank-test-{uuid.uuid4().hex[:12]}", analyzer=analyzer
            )
            made.append(b)
            return b

    return make, made


@pytest.fixture(params=BACKENDS)
def new_backend(
    request: pytest.FixtureRequest, tmp_path: Path, analyzer: Analyzer
) -> Iterator[BackendFactory]:
    """Makes empty backends of one kind (for tests that write)."""
    make, made = _factory(request.param, request, tmp_path, analyzer)
    yield make
    for b in made:
        b.close()


@pytest.fixture(params=BACKENDS, scope="module")
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, analyzer: Analyzer
) -> Iterator[SearchBackend]:
    """A backend holding the test catalog; read-only, shared by a module's tests."""
    make, made = _factory(request.param, request, tmp_path_factory.mktemp("shop"), analyzer)
    b = make()
    b.index_items(catalog.items(), popularity=catalog.popularity())
    yield b
    for x in made:
        x.close()
