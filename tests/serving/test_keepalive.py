"""A keep-alive connection is closed after ``keep_alive_requests`` requests
(:mod:`serving.keepalive`), so the workers' connections are spread again over time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from serving.balance import WorkerLoads
from serving.keepalive import _TRACKED, KeepAliveLimit


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"connection", b"keep-alive")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(app: KeepAliveLimit, client: tuple[str, int] | None) -> list[tuple[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": client}
    asyncio.run(app(scope, receive, send))
    return list(sent[0]["headers"])


def _closes(headers: list[tuple[bytes, bytes]]) -> bool:
    return (b"connection", b"close") in headers


def test_every_nth_response_on_a_connection_says_close() -> None:
    app = KeepAliveLimit(_ok, max_requests=3)
    a, b = ("10.0.0.1", 5000), ("10.0.0.1", 5001)
    closes_a = [_closes(_call(app, a)) for _ in range(7)]
    assert closes_a == [False, False, True, False, False, True, False]
    assert [_closes(_call(app, b)) for _ in range(3)] == [False, False, True]  # its own count
    last = _call(app, a)
    assert not _closes(last)
    # the closing response keeps the app's other headers and has one connection header only
    h = _call(app, a)  # the third since the last close
    assert _closes(h) and sum(k == b"connection" for k, _ in h) == 1
    assert (b"content-type", b"text/plain") in h


def test_zero_means_no_limit_and_no_client_is_left_alone() -> None:
    app = KeepAliveLimit(_ok, max_requests=0)
    assert not any(_closes(_call(app, ("h", 1))) for _ in range(50))
    capped = KeepAliveLimit(_ok, max_requests=1)
    assert not _closes(_call(capped, None))  # a unix socket: no client address, nothing to count


def test_counts_of_connections_gone_away_are_bounded() -> None:
    app = KeepAliveLimit(_ok, max_requests=1000)
    for port in range(3 * _TRACKED):
        _call(app, ("10.0.0.2", port))
    assert len(app.served) <= _TRACKED
    assert ("10.0.0.2", 3 * _TRACKED - 1) in app.served  # the most recent kept


def test_the_middleware_closes_what_the_loads_say_and_what_the_limit_says(
    tmp_path: Path,
) -> None:
    WorkerLoads(tmp_path, "peer")  # a worker that has counted nothing: it holds none
    mine = WorkerLoads(tmp_path, "mine", window=0.0, recount=0.0, gap=0.0)
    app = KeepAliveLimit(_ok, max_requests=0, loads=mine)
    # a zero window: only this request's connection is active; 1 is within ceil(1 / 2)
    assert not _closes(_call(app, ("h", 1)))
    mine.window = 60.0  # now every connection seen in the last minute
    mine._since = -1e9  # counting long since
    # two connections, two workers: each closed while this one holds more than ceil(2 / 2)
    assert [_closes(_call(app, ("h", p))) for p in (2, 3, 1)] == [True, True, False]
    assert mine.active == 1
    (tmp_path / "x").mkdir()
    limited = KeepAliveLimit(_ok, max_requests=2, loads=WorkerLoads(tmp_path / "x", "x"))
    assert [_closes(_call(limited, ("h", 1))) for _ in range(4)] == [False, True, False, True]
    assert limited.loads is not None and limited.loads.active == 0  # the closed one forgotten
