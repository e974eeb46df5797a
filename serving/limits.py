"""Limits enforced before the app sees a request: the body's size and NUL characters.

A query parameter or path holding a NUL character (``%00``) is refused with 400 naming it: no
store can hold one (PostgreSQL refuses the text, and a log batch with one such row would fail
on every retry).

A body announced larger than ``max_body_bytes`` (``Content-Length``) is refused with 413 at
once, without reading it; a body sent without a length (chunked) is counted as it arrives and
refused as soon as it passes the limit. Either way the worker holds at most ``max_body_bytes``
of it, so one huge POST cannot take a worker's memory.
"""

from __future__ import annotations

import json
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _refusal(status: int, error: str, message: str, field: str,
             *, close: bool = False) -> tuple[dict[str, object], bytes]:
    """The response start and body of an error answered before the app (the API's error
    body: error, message, field)."""
    body = json.dumps({"error": error, "message": message, "field": field}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    return {"type": "http.response.start", "status": status, "headers": headers}, body


def _nul_in(scope: Scope) -> str | None:
    """The name of the query parameter (or ``(path)``) that holds a NUL character, if any."""
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query:
        for part in query.split(b"&"):
            if b"%00" in part:
                name = unquote_plus(part.split(b"=", 1)[0].decode("latin-1"))
                return name.replace("\x00", "") or "(query)"
    path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    if b"%00" in path or b"\x00" in path:
        return "(path)"
    return None


class BodyLimitMiddleware:
    """Pure ASGI middleware (no per-request allocation beyond a counter)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nul = _nul_in(scope)
        if nul is not None:
            start, body = _refusal(400, "bad_request",
                                   f"{nul}: must not contain NUL characters (%00)", nul)
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    announced = 0
                if announced > limit:
                    await self._refuse(send)
                    return
                break
        seen = 0
        started = refused = False

        async def counting_receive() -> Message:
            # Past the limit: answer 413 ourselves and tell the app the client went away, so
            # it stops reading; whatever it still tries to send is dropped.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        start, body = _refusal(
            413, "payload_too_large",
            f"the request body is larger than the limit of {self.max_bytes} bytes "
            "(SHOPRANK_MAX_BODY_BYTES); send smaller batches", "(body)", close=True)
        await send(start)
        await send({"type": "http.response.body", "body": body})
