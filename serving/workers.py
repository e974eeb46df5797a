"""Several uvicorn worker processes, each accepting connections on a socket of its own.

uvicorn's ``--workers`` lets every worker accept from one shared listening socket. The
worker that wakes first takes every connection waiting (libuv drains the accept queue), so
connections opened together land on one worker: a client opening 8 keep-alive connections
at once had all 8 served by one worker while the other idled, and 32 were split 21 to 11.
Each worker here listens on its own ``SO_REUSEPORT`` socket instead, and the kernel spreads
new connections over the listening sockets by a hash of the two addresses.

A worker starts listening only once its app has started (models loaded), so a worker that is
still loading, or being replaced after a crash, is sent no connections. The parent process
only starts workers, replaces one that dies, and stops them all on SIGINT / SIGTERM.

Without ``SO_REUSEPORT`` (not Linux or BSD), :func:`serve` falls back to uvicorn's own
shared-socket workers.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections import Counter
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Literal

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from data.errors import ShopRankError

log = logging.getLogger(__name__)

HAS_REUSEPORT = hasattr(socket, "SO_REUSEPORT")


class PortInUseError(ShopRankError):
    """The address to serve on is taken by another program."""


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening (uvicorn
    listens on it once the app has started)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise _in_use(host, port, exc) from exc
    return sock


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _in_use(host: str, port: int, exc: OSError) -> PortInUseError:
    return PortInUseError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; "
                          "stop the program using it or pass another --port")


TcpState = Literal["established", "listen"]
_STATE_CODES = {"established": "01", "listen": "0A"}


def sockets_by_process(port: int, state: TcpState) -> Counter[int]:
    """How many TCP sockets on local ``port`` in ``state`` each process holds (Linux, from
    /proc; processes of other users are not visible). With ``"listen"``: which workers accept
    connections; with ``"established"``: how connections are spread over them."""
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
            if f[3] == code and int(f[1].rsplit(":", 1)[1], 16) == port and int(f[9]) in owner:
                got[owner[int(f[9])]] += 1
    return got


def _worker(config: uvicorn.Config, port: int) -> None:
    """One worker process: bind its own socket, then run uvicorn on it."""
    config.configure_logging()
    try:
        sock = reuseport_socket(config.host, port)
    except PortInUseError as exc:
        log.error("%s", exc)
        raise SystemExit(STARTUP_FAILURE) from None
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # the terminal's Ctrl-C reaches every process of the group
        pass
    except SystemExit:  # uvicorn exits 1 when the app cannot be imported or built
        if server.started:
            raise
    if not server.started:  # the app did not start (its start-up failed): tell the parent
        raise SystemExit(STARTUP_FAILURE)


def serve(config: uvicorn.Config) -> None:
    """Run ``config.workers`` workers until SIGINT / SIGTERM; replace a worker that exits.

    Returns when stopped; raises :class:`PortInUseError` when the address is taken, and
    ``SystemExit(3)`` when a worker fails before it started (the app cannot load): a worker
    that cannot start is not started again and again."""
    if not HAS_REUSEPORT:
        from uvicorn.supervisors import Multiprocess

        sock = config.bind_socket()

        Multiprocess(config, sockets=[sock]).run()
        return
    # Another server on the address (even another shoprank, whose SO_REUSEPORT sockets would
    # let ours join its group and share its connections) must stop this one: a plain bind
    # fails while anything listens there.
    if config.port:
        with socket.socket(_family(config.host)) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.host, config.port))
            except OSError as exc:
                raise _in_use(config.host, config.port, exc) from exc
    # Hold the address for the whole run (bound, never listening: the kernel sends it no
    # connection); it also fixes the port when ``config.port`` is 0.
    holder = reuseport_socket(config.host, config.port)
    port = int(holder.getsockname()[1])
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start() -> BaseProcess:
        p = ctx.Process(target=_worker, args=(config, port), name="shoprank-worker")
        p.start()
        return p

    log.info("serving on http://%s:%d with %d workers", config.host, port, config.workers)
    procs = [start() for _ in range(config.workers)]
    failed = False
    try:
        while not stop.wait(0.5):
            for i, p in enumerate(procs):
                if p.exitcode is None:
                    continue
                if p.exitcode == STARTUP_FAILURE:
                    log.error("worker %s failed to start; stopping", p.pid)
                    failed = True
                    stop.set()
                    break
                log.warning("worker %s exited (code %s); starting another", p.pid, p.exitcode)
                procs[i] = start()
    finally:
        for p in procs:
            if p.exitcode is None:
                p.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for p in procs:
            p.join(timeout=(config.timeout_graceful_shutdown or 30) + 5)
            if p.exitcode is None:
                p.kill()
                p.join()
        holder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise SystemExit(STARTUP_FAILURE)
