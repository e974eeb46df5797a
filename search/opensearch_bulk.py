"""Bulk writes to OpenSearch: chunks sent two at a time, each within a budget.

Not opensearch-py's ``parallel_bulk``: when a chunk fails, its pool's ``terminate`` waits for
a task-feeding thread blocked on the pool's full queue, forever (seen with a node frozen in
the middle of a write). Here a failed chunk cancels the chunks not sent yet and raises; the
one other request in flight ends within its own budget.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any

from search.errors import SearchError

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

Outcome = list[tuple[bool, Any]]
"""(ok, info) per action of one chunk, as opensearch-py's bulk helpers report them."""


def chunks(actions: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """``actions`` in lists of at most ``size``."""
    it = iter(actions)
    while chunk := list(islice(it, size)):
        yield chunk


def send_chunk(client: OpenSearch, chunk: list[dict[str, Any]], timeout: float) -> Outcome:
    """One bulk request. A node that does not answer within ``timeout`` raises
    (``ConnectionTimeout``) instead of reporting the chunk's documents as rejected, so that
    the caller can tell an unreachable index from refused documents."""
    from opensearchpy import helpers

    return list(helpers.streaming_bulk(
        client, chunk, chunk_size=len(chunk), max_chunk_bytes=1 << 30,
        raise_on_error=False, raise_on_exception=True, request_timeout=timeout,
    ))


def bulk_send(
    client: OpenSearch,
    actions: Iterable[dict[str, Any]],
    *,
    chunk_size: int,
    timeout: float,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Send ``actions`` in chunks of ``chunk_size``, two requests at a time (one chunk is
    indexed by OpenSearch while the next is built here), each within ``timeout`` seconds;
    ``progress`` gets the number of documents each chunk indexed. Returns how many were
    indexed; documents the node refused raise :class:`SearchError` (after the whole write);
    a request that fails raises its opensearch-py error at once."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="opensearch-bulk")
    inflight: deque[Future[Outcome]] = deque()
    n = 0
    errors: list[str] = []

    def collect(fut: Future[Outcome]) -> None:
        nonlocal n
        done = 0
        for ok, info in fut.result():
            if ok:
                done += 1
            elif len(errors) < 3:
                errors.append(str(next(iter(info.values()), info)))
        n += done
        if progress is not None and done:
            progress(done)

    try:
        for chunk in chunks(actions, chunk_size):
            inflight.append(pool.submit(send_chunk, client, chunk, timeout))
            if len(inflight) >= 2:
                collect(inflight.popleft())
        while inflight:
            collect(inflight.popleft())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if errors:
        raise SearchError(f"OpenSearch rejected documents while indexing, e.g.: {errors[0]}")
    return n
