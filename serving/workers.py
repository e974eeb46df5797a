"""Several uvicorn worker processes; the parent accepts and hands each connection to the
worker with the fewest open connections.

uvicorn's ``--workers`` lets every worker accept from one shared listening socket: the worker
that wakes first takes every connection waiting (libuv drains the accept queue), so a client
opening 8 keep-alive connections at once had all 8 served by one worker while the other
idled. One ``SO_REUSEPORT`` socket per worker (the previous design) lets the kernel spread
connections by a hash instead, which is even only on average: 2 connections landed on one
worker about half the time, halving the throughput a storefront with a small connection pool
gets. Here the parent process listens, accepts, and passes each connection's file descriptor
(``SCM_RIGHTS`` over a Unix socket pair) to the worker with the fewest open connections,
taking turns on ties; a worker tells the parent when one of its connections closes. The
parent only accepts and passes descriptors: requests never go through it.

The parent starts listening once every worker has started its app (models loaded), so the
port refuses connections until the pool is up. A worker that dies is replaced and sent
connections again once its app has started. SIGINT / SIGTERM close the listening socket, then
stop the workers (uvicorn finishes the requests in flight).

Without descriptor passing (``socket.send_fds``: not on Windows), :func:`serve` falls back to
uvicorn's own shared-socket workers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import selectors
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Literal

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from core.errors import ShopRankError

log = logging.getLogger(__name__)

CAN_PASS_SOCKETS = hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX")
_READY, _CLOSED = b"r", b"c"
"""What a worker tells the parent: its app started; one of its connections closed."""


class PortInUseError(ShopRankError):
    """The address to serve on is taken by another program."""


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _in_use(host: str, port: int, exc: OSError) -> PortInUseError:
    return PortInUseError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; "
                          "stop the program using it or pass another --port")


TcpState = Literal["established", "listen", "any"]
_STATE_CODES = {"established": "01", "listen": "0A", "any": None}


def sockets_by_process(port: int, state: TcpState) -> Counter[int]:
    """How many TCP sockets on local ``port`` in ``state`` each process holds (Linux, from
    /proc; processes of other users are not visible). With ``"established"``: how
    connections are spread over the workers; with ``"listen"``: who accepts them; with
    ``"any"``: which processes still hold a socket of the port (closing ones too)."""
    owner: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fds = list((d / "fd").iterdir())
        except OSError:  # ended meanwhile, or not ours
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                owner[int(target[8:-1])] = int(d.name)
    code = _STATE_CODES[state]
    got: Counter[int] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if code in (None, f[3]) and int(f[1].rsplit(":", 1)[1], 16) == port and int(f[9]) in owner:
                got[owner[int(f[9])]] += 1
    return got


class _RequestBudget:
    """The app as one connection sees it: the response to its ``limit``-th request carries
    ``Connection: close`` (uvicorn then closes the connection after it), so the client's next
    connection is placed anew by the parent."""

    __slots__ = ("app", "left")

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.left = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.left -= 1
        if self.left > 0:
            await self.app(scope, receive, send)
            return

        async def closing(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, closing)


class _HandedServer(uvicorn.Server):
    """uvicorn serving the connections the parent passes over ``channel`` (no socket of its
    own). The protocol objects are built as uvicorn builds them for its own sockets."""

    def __init__(
        self, config: uvicorn.Config, channel: socket.socket, requests_per_connection: int = 0
    ) -> None:
        super().__init__(config)
        self.channel = channel
        self.requests_per_connection = requests_per_connection

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        if self.should_exit or not self.started:
            return
        loop = asyncio.get_running_loop()
        config, channel = self.config, self.channel
        protocol_class: Any = config.http_protocol_class

        def tell_closed() -> None:
            try:
                channel.send(_CLOSED)
            except OSError:  # the parent is gone: we are stopping anyway
                pass

        def closed(lost: Any) -> Any:
            def connection_lost(exc: Exception | None) -> None:
                tell_closed()
                lost(exc)

            return connection_lost

        def create_protocol() -> asyncio.Protocol:
            protocol = protocol_class(config=config, server_state=self.server_state,
                                      app_state=self.lifespan.state, _loop=loop)
            protocol.connection_lost = closed(protocol.connection_lost)
            if self.requests_per_connection > 0:  # uvicorn reads protocol.app at each request
                protocol.app = _RequestBudget(protocol.app, self.requests_per_connection)
            return protocol  # type: ignore[no-any-return]

        async def adopt(conn: socket.socket) -> None:
            try:
                await loop.connect_accepted_socket(create_protocol, conn)
            except OSError:  # the client left before we took it
                conn.close()
                tell_closed()

        def receive() -> None:  # called when a message waits: recv does not block
            try:
                msg, fds, _, _ = socket.recv_fds(channel, 1, 1)
            except OSError:
                msg, fds = b"", []
            if not msg and not fds:  # the parent went away
                loop.remove_reader(channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                loop.create_task(adopt(socket.socket(fileno=fd)))

        loop.add_reader(channel.fileno(), receive)
        channel.send(_READY)


def _worker(
    config: uvicorn.Config, channel: socket.socket, requests_per_connection: int = 0
) -> None:
    """One worker process: start the app, then serve what the parent passes."""
    config.configure_logging()
    server = _HandedServer(config, channel, requests_per_connection)
    try:
        server.run()
    except KeyboardInterrupt:  # the terminal's Ctrl-C reaches every process of the group
        pass
    except SystemExit:  # uvicorn exits 1 when the app cannot be imported or built
        if server.started:
            raise
    if not server.started:  # the app did not start (its start-up failed): tell the parent
        raise SystemExit(STARTUP_FAILURE)


@dataclass
class _Slot:
    process: BaseProcess
    channel: socket.socket
    ready: bool = False
    open: int = 0
    """Connections passed and not yet reported closed."""


def serve(config: uvicorn.Config, *, requests_per_connection: int = 0) -> None:
    """Run ``config.workers`` workers until SIGINT / SIGTERM; replace a worker that exits.
    ``requests_per_connection``: close a connection after that many requests (0: never), so
    a client reconnects and the connection is placed anew.

    Returns when stopped; raises :class:`PortInUseError` when the address is taken, and
    ``SystemExit(3)`` when a worker fails before it started (the app cannot load): a worker
    that cannot start is not started again and again."""
    if not CAN_PASS_SOCKETS:
        from uvicorn.supervisors import Multiprocess

        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
        return
    listener = socket.socket(_family(config.host), socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((config.host, config.port))
    except OSError as exc:
        listener.close()
        raise _in_use(config.host, config.port, exc) from exc
    port = int(listener.getsockname()[1])
    listener.setblocking(False)
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    sel = selectors.DefaultSelector()

    def start() -> _Slot:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        p = ctx.Process(target=_worker, args=(config, theirs, requests_per_connection),
                        name="shoprank-worker")
        p.start()
        theirs.close()
        # the loop reads it only when select says so; a send waits while the worker is behind
        # (the next connections wait in the listen queue meanwhile), up to a point
        ours.settimeout(5.0)
        slot = _Slot(p, ours)
        sel.register(ours, selectors.EVENT_READ, slot)
        return slot

    def retire(slot: _Slot) -> None:
        sel.unregister(slot.channel)
        slot.channel.close()

    log.info("serving on http://%s:%d with %d workers", config.host, port, config.workers)
    slots = [start() for _ in range(config.workers)]
    turn = itertools.count()
    listening = accepting = failed = False
    try:
        while not stopping:
            events = sel.select(timeout=0.5)
            # what the workers said first (closed connections), then new connections
            for key, _ in sorted(events, key=lambda e: e[0].fileobj is listener):
                if key.fileobj is listener:
                    _pass_waiting(listener, slots, turn)
                    continue
                slot: _Slot = key.data
                try:
                    msg = slot.channel.recv(1)
                except OSError:
                    msg = b""
                if msg == _READY:
                    slot.ready = True
                elif msg == _CLOSED:
                    slot.open = max(0, slot.open - 1)
                else:  # the worker exited: its connections went with it
                    slot.ready, slot.open = False, 0
                    retire(slot)
            if not listening and all(s.ready for s in slots):
                try:
                    listener.listen(config.backlog)
                except OSError as exc:  # another program bound the port too and listened first
                    raise _in_use(config.host, port, exc) from exc
                listening = True
            # connections wait in the listen queue while no worker can take them
            if listening and accepting != any(s.ready for s in slots):
                accepting = not accepting
                if accepting:
                    sel.register(listener, selectors.EVENT_READ)
                else:  # every worker is gone: connections wait in the queue for the new ones
                    sel.unregister(listener)
            for i, slot in enumerate(slots):
                p = slot.process
                if p.exitcode is None or stopping:  # (a group kill stops the workers first)
                    continue
                if p.exitcode == STARTUP_FAILURE:
                    log.error("worker %s failed to start; stopping", p.pid)
                    failed = stopping = True
                    break
                log.warning("worker %s exited (code %s); starting another", p.pid, p.exitcode)
                if slot.channel.fileno() >= 0:
                    retire(slot)
                slots[i] = start()
    finally:
        listener.close()  # no new connections; the workers finish what they have
        for slot in slots:
            if slot.process.exitcode is None:
                slot.process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for slot in slots:
            p = slot.process
            p.join(timeout=(config.timeout_graceful_shutdown or 30) + 5)
            if p.exitcode is None:
                p.kill()
                p.join()
            slot.channel.close()
        sel.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise SystemExit(STARTUP_FAILURE)


def _pass_waiting(listener: socket.socket, slots: list[_Slot], turn: Iterator[int]) -> None:
    """Accept the connections waiting and pass each to the ready worker with the fewest open
    ones (ties take turns)."""
    for _ in range(64):
        ready = [s for s in slots if s.ready]
        if not ready:
            return
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        with conn:
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            least = min(s.open for s in ready)
            tied = [s for s in ready if s.open == least]
            for slot in [tied[next(turn) % len(tied)], *ready]:
                try:
                    socket.send_fds(slot.channel, [b"x"], [conn.fileno()])
                except TimeoutError:  # that worker took none for seconds: try the next one
                    continue
                except OSError:  # that worker is going away: try the next one
                    slot.ready = False
                    continue
                slot.open += 1
                break
