"""A frozen OpenSearch node (SIGSTOP: it accepts connections and never answers) costs a search
at most its budget, then nothing while the circuit breaker is open, and the backend recovers
without a restart once the node runs again."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from search.errors import BackendUnavailableError
from search.opensearch_backend import OpenSearchBackend
from search.query import SearchRequest
from tests.conftest import OpenSearchNode
from tests.search import catalog

BUDGET = 1.0


@pytest.fixture()
def node_pid(opensearch_node: OpenSearchNode) -> int:
    if opensearch_node.node_dir is None:
        pytest.fail("this test freezes the node it started; unset SHOPRANK_TEST_OPENSEARCH_URL")
    return int((opensearch_node.node_dir / "opensearch.pid").read_text().strip())


@pytest.fixture()
def backend(opensearch_url: str) -> Iterator[OpenSearchBackend]:
    b = OpenSearchBackend(opensearch_url, index=f"shoprank-frozen-{uuid.uuid4().hex[:8]}",
                          read_timeout=BUDGET)
    b.rebuild(iter(catalog.items()))
    yield b
    b.client.indices.delete(index=f"{b.alias}*", ignore_unavailable=True)
    b.close()


def test_a_frozen_node_costs_one_budget_then_fails_fast_and_recovers(
    backend: OpenSearchBackend, node_pid: int
) -> None:
    query = SearchRequest(text="dress")
    assert_recovers(backend, query)  # a fresh index's first searches may exceed the budget
    os.kill(node_pid, signal.SIGSTOP)
    try:
        took = []
        for _ in range(4):
            t0 = time.monotonic()
            with pytest.raises(BackendUnavailableError):
                backend.search(query)
            took.append(time.monotonic() - t0)
        assert max(took) < BUDGET + 0.5, took  # never the client's 30 s default
        assert took[-1] < 0.05, took  # the breaker is open: not even tried
        t0 = time.monotonic()
        assert backend.health() is False
        assert time.monotonic() - t0 < 1.0
    finally:
        os.kill(node_pid, signal.SIGCONT)
    assert_recovers(backend, query)  # the breaker lets a probe through after its cooldown
    assert backend.health() is True


def assert_recovers(backend: OpenSearchBackend, query: SearchRequest) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            assert backend.search(query).total > 0
            return
        except BackendUnavailableError:
            assert time.monotonic() < deadline, "the backend did not answer"
            time.sleep(0.2)
