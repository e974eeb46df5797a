"""A keep-alive connection is closed after ``keep_alive_requests`` requests
(:mod:`serving.keepalive`), so the workers' connections are spread again over time."""

from __future__ import annotations

import asyncio
from typing import Any

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
