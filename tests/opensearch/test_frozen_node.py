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


WRITE_BUDGET = 5.0
CHUNK = 100
"""Small chunks: the first one is indexed well within the budget on a loaded machine."""


def test_a_node_that_freezes_during_a_bulk_write_costs_one_write_budget(
    opensearch_url: str, node_pid: int
) -> None:
    """The node is stopped after the first chunk of a six-chunk bulk was indexed (from the
    progress callback), so later chunks are sent to a node that accepts and never answers:
    the write fails within its budget instead of the client's 30 s, the breaker opens, and
    the same backend writes again once the node runs."""
    b = OpenSearchBackend(opensearch_url, index=f"shoprank-frozenw-{uuid.uuid4().hex[:8]}",
                          read_timeout=BUDGET, write_timeout=WRITE_BUDGET, bulk_chunk=CHUNK)
    base = catalog.items()[0]
    many = [base.model_copy(update={"item_id": f"w{k}", "title": f"lantern {k}"})
            for k in range(6 * CHUNK)]
    stopped: list[float] = []

    def freeze_once(_done: int) -> None:
        if not stopped:
            os.kill(node_pid, signal.SIGSTOP)
            stopped.append(time.monotonic())

    try:
        b.rebuild(iter(catalog.items()))
        try:
            with pytest.raises(BackendUnavailableError, match="within its budget"):
                b.index_items(many, progress=freeze_once)
            assert stopped, "the first chunk was not indexed within the write budget"
            took = time.monotonic() - stopped[0]
            assert took < 2 * WRITE_BUDGET + 1.0, took  # never the client's 30 s default
            took = []
            for _ in range(2):  # the next write's index lookup costs one read budget, then
                t0 = time.monotonic()  # the breaker is open (two failures): not even tried
                with pytest.raises(BackendUnavailableError):
                    b.upsert(many[:1])
                took.append(time.monotonic() - t0)
            assert took[0] < BUDGET + 0.5 and took[1] < 0.05, took
        finally:
            os.kill(node_pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while True:  # once the breaker lets a probe through, writes go through again
            try:
                assert b.upsert(many[:1]) == 1
                break
            except BackendUnavailableError:
                assert time.monotonic() < deadline, "the backend did not write again"
                time.sleep(0.2)
        assert b.search(SearchRequest(text="lantern 0")).total > 0
    finally:
        b.client.indices.delete(index=f"{b.alias}*", ignore_unavailable=True,
                                request_timeout=30)
        b.close()
