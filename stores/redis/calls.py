"""Round trips to Redis on connections of the store's own: :class:`Calls`.

Every command the hot state sends on a request goes through :meth:`Calls.run`: the commands
packed into one write on a connection taken from a small idle list, then each reply read. It
uses redis-py's ``Connection`` (its protocol, parser, handshake and timeouts) but not the
client's command path, which cost about 65 µs of client CPU per command in redis-py 8 (the
connection pool's checks, retries, command-name parsing and observability hooks) against
about 30 µs for the same round trip on a connection held directly; a request reads shopper
state and writes a feed page, so the shared path paid that on every request (numbers in
docs/decisions.md, "Redis calls on the store's own connections").

A connection that fails is closed (never returned to the idle list); a call on a connection
that had been idle and turns out dead (the server restarted since) is sent once more on a new
one. Errors and timeouts are a :class:`StoreUnavailableError`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.connection import AbstractConnection

from stores.errors import StoreUnavailableError

Command = Sequence[Any]


class Calls:
    """Commands sent in one write and their replies, on connections made like ``client``'s
    (same server, database, credentials, protocol and timeouts); thread-safe."""

    def __init__(self, client: redis.Redis, *, keep: int = 8) -> None:
        pool = client.connection_pool
        self._make = lambda: pool.connection_class(**pool.connection_kwargs)
        self._keep = keep
        self._idle: list[AbstractConnection] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _take(self) -> tuple[AbstractConnection, bool]:
        """A connection and whether it had been idle (it may have died meanwhile)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child never uses its parent's sockets
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop(), True
        return self._make(), False

    def _give_back(self, conn: AbstractConnection) -> None:
        with self._lock:
            if len(self._idle) < self._keep and self._pid == os.getpid():
                self._idle.append(conn)
                return
        conn.disconnect()

    def run(self, *commands: Command) -> list[Any]:
        """Send ``commands`` in one write and read their replies, in order. A command the
        server refused (a ``ResponseError``, e.g. ``NoScriptError``) is returned in its
        place, not raised; connection errors and timeouts raise StoreUnavailableError."""
        for attempt in (1, 2):
            conn, was_idle = self._take()
            try:
                replies = self._exchange(conn, commands)
            except redis.ConnectionError as exc:
                conn.disconnect()
                if was_idle and attempt == 1:
                    continue  # the server restarted since this connection was last used
                raise StoreUnavailableError(f"Redis: {exc}") from None
            except redis.RedisError as exc:
                conn.disconnect()
                raise StoreUnavailableError(f"Redis: {exc}") from None
            except BaseException:
                conn.disconnect()  # a reply may be left unread: the connection is unusable
                raise
            self._give_back(conn)
            return replies
        raise AssertionError("unreachable")

    @staticmethod
    def _exchange(conn: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
        conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except redis.ResponseError as exc:  # this command's error; the next reply follows
                replies.append(exc)
        return replies

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()
