"""Close a keep-alive connection after ``keep_alive_requests`` requests (nginx's
``keepalive_requests``).

uvicorn's workers share one listening socket, and a worker accepts every connection queued
when it wakes: a client opening 8 connections at once often lands 6 on one worker and 2 on
the other, and keep-alive keeps them there. The last response on a connection carries
``Connection: close`` (uvicorn then closes it after sending); the client reconnects, and a
worker idle at that moment is the one waiting in ``accept``, so connections drift to the
less busy worker.
"""

from __future__ import annotations

from serving.metrics import ASGIApp, Message, Receive, Scope, Send

_TRACKED = 4096
"""Connections counted at most: a connection closed by its client leaves its count behind,
so past this many the older half is forgotten (a forgotten one simply starts again at 0)."""


class KeepAliveLimit:
    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.served: dict[tuple[str, int], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if not client or self.max_requests <= 0:
            await self.app(scope, receive, send)
            return
        key = (client[0], client[1])  # one live connection of this process
        served = self.served.pop(key, 0) + 1
        if served < self.max_requests:
            self.served[key] = served  # re-inserted: the dict stays in order of last use
            if len(self.served) > _TRACKED:
                for stale in list(self.served)[: _TRACKED // 2]:
                    del self.served[stale]
            await self.app(scope, receive, send)
            return

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *(h for h in message.get("headers", ()) if h[0].lower() != b"connection"),
                    (b"connection", b"close"),
                ]
            await send(message)

        await self.app(scope, receive, closing)
