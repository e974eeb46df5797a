"""uvicorn's httptools protocol with each response written to the socket in one call.

uvicorn writes a response's status line and headers, then its body, as two writes: two
``send`` system calls and two TCP segments, and the client wakes up for each. Here the
connection's transport holds a write until the next one on the same connection, or until the
event loop's next turn at the latest, and sends what it holds together: a response whose body
follows its headers in the same turn (every response of a route that is not streamed) goes
out in one write. Nothing else of uvicorn changes: the class is given to uvicorn through its
``http`` option, and only the transport it is handed is wrapped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

UVICORN_OPTIONS: dict[str, object] = {
    "http": "serving.http:OneWriteHttpToolsProtocol",
    "server_header": False,  # no "server: uvicorn" header
}
"""What ``shoprank serve`` and ``shoprank demo`` give ``uvicorn.run``."""


class _JoinedWrites:
    """An asyncio transport whose writes in one turn of the loop go out as one write."""

    __slots__ = ("_transport", "_held", "_loop")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._loop = loop

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            # held until the next write (a body after its headers) or the loop's next turn
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
            return
        self._held = None
        self._transport.write(held + data)

    def writelines(self, data: Iterable[bytes | bytearray | memoryview]) -> None:
        # through write(): after what is held, never before it
        self.write(b"".join(data))

    def flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        held = self._held
        return self._transport.get_write_buffer_size() + (0 if held is None else len(held))

    def __getattr__(self, name: str) -> Any:
        # everything else (extra info, reading, flow control, abort) is the transport's own
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
