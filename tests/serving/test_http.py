"""A response leaves the server in one write (:mod:`serving.http`), driven through uvicorn's
own protocol with a transport that records what it is given."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from serving.http import OneWriteHttpToolsProtocol


class _Recorder(asyncio.Transport):
    """What the socket would be asked to send, call by call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _json(scope: Any, receive: Any, send: Any) -> None:
    body = b'{"items": []}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _no_content(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def _streamed(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
        await asyncio.sleep(0)  # the next part in a later turn of the loop
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _serve(app: Any, requests: bytes, responses: int) -> _Recorder:
    async def run() -> _Recorder:
        config = Config(app, http=OneWriteHttpToolsProtocol, lifespan="off", access_log=False)
        state = ServerState()
        protocol = OneWriteHttpToolsProtocol(config, state, {})
        transport = _Recorder()
        protocol.connection_made(transport)
        protocol.data_received(requests)
        for _ in range(1000):  # until the tasks are done and the loop has turned once more
            await asyncio.sleep(0)
            done = b"".join(transport.writes).count(b"HTTP/1.1 ") >= responses
            if done and not state.tasks:
                await asyncio.sleep(0)
                break
        protocol.connection_lost(None)
        return transport

    return asyncio.run(run())


def test_headers_and_body_go_out_in_one_write() -> None:
    t = _serve(_json, b"GET /v1/recommendations HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert len(t.writes) == 1
    head, _, body = t.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 13" in head
    assert body == b'{"items": []}'


def test_each_response_on_a_keep_alive_connection_is_one_write() -> None:
    one = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    t = _serve(_json, one * 3, 3)  # three requests pipelined
    assert [w.count(b"HTTP/1.1 200 OK") for w in t.writes] == [1, 1, 1]
    assert all(w.endswith(b'{"items": []}') for w in t.writes)


def test_a_response_without_a_body_is_sent_in_the_next_turn() -> None:
    t = _serve(_no_content, b"DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    assert len(t.writes) == 1
    assert t.writes[0].startswith(b"HTTP/1.1 204 No Content\r\n")
    assert t.writes[0].endswith(b"\r\n\r\n")


def test_a_streamed_response_arrives_whole_and_in_order() -> None:
    t = _serve(_streamed, b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n", 1)
    sent = b"".join(t.writes)
    assert b"transfer-encoding: chunked" in sent
    _, _, body = sent.partition(b"\r\n\r\n")
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
    assert len(t.writes) >= 2  # parts written in later turns are not held back for the end


def test_close_sends_what_is_held_first() -> None:
    from serving.http import _JoinedWrites

    async def run() -> _Recorder:
        t = _Recorder()
        joined = _JoinedWrites(t, asyncio.get_running_loop())
        joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert t.writes == [] and joined.get_write_buffer_size() == 19
        joined.close()
        return t

    t = asyncio.run(run())
    assert t.writes == [b"HTTP/1.1 200 OK\r\n\r\n"] and t.closed


def test_writelines_keeps_the_order_of_what_is_held() -> None:
    from serving.http import _JoinedWrites

    async def run() -> _Recorder:
        t = _Recorder()
        joined = _JoinedWrites(t, asyncio.get_running_loop())
        joined.write(b"head;")
        joined.writelines([b"body", b";end"])
        await asyncio.sleep(0)  # the loop's next turn: nothing more is held
        return t

    assert asyncio.run(run()).writes == [b"head;body;end"]


def test_the_served_options_load_this_protocol() -> None:
    from serving.http import UVICORN_OPTIONS

    config = Config(_json, lifespan="off", **UVICORN_OPTIONS)  # type: ignore[arg-type]
    config.load()
    assert config.http_protocol_class is OneWriteHttpToolsProtocol
    assert config.server_header is False
