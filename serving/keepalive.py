"""Close a keep-alive connection after ``keep_alive_requests`` requests (nginx's
``keepalive_requests``), or sooner when this worker holds more than its share of the server's
connections (:mod:`serving.balance`).

The last response on a connection carries ``Connection: close`` (uvicorn then closes it after
sending) and the client reconnects.
"""

from __future__ import annotations

import time

from serving.balance import WorkerLoads
from serving.metrics import ASGIApp, Message, Receive, Scope, Send

_TRACKED = 4096
"""Connections counted at most: a connection closed by its client leaves its count behind,
so past this many the older half is forgotten (a forgotten one simply starts again at 0)."""


class KeepAliveLimit:
    def __init__(
        self, app: ASGIApp, max_requests: int, loads: WorkerLoads | None = None
    ) -> None:
        self.app = app
        self.max_requests = max_requests
        self.loads = loads
        self.served: dict[tuple[str, int], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if not client or (self.max_requests <= 0 and self.loads is None):
            await self.app(scope, receive, send)
            return
        key = (client[0], client[1])  # one live connection of this process
        close = self.loads is not None and self.loads.should_close(key, time.monotonic())
        if self.max_requests > 0:
            served = self.served.pop(key, 0) + 1
            if served >= self.max_requests:
                close = True
                if self.loads is not None:
                    self.loads.forget(key)
            elif not close:
                self.served[key] = served  # re-inserted: the dict stays in order of last use
                if len(self.served) > _TRACKED:
                    for stale in list(self.served)[: _TRACKED // 2]:
                        del self.served[stale]
        if not close:
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
