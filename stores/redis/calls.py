"""Round trips to Redis on connections of the store's own: :class:`Calls`.

Every command the hot state sends on a request goes through :meth:`Calls.run`: the commands
packed into one write (``hiredis.pack_command``, as redis-py packs them) on a connection taken
from a small idle list, then each reply read by a ``hiredis.Reader`` of the connection's own,
straight from its socket. redis-py's ``Connection`` opens the connection (address, TLS,
credentials, database, protocol, timeouts) and closes it; its command path is not used: the
client's cost about 65 µs of client CPU per command in redis-py 8 (the connection pool's
checks, retries, command-name parsing and observability hooks) against about 30 µs for the
same round trip on a connection held directly, and that connection's own reply path (a
parser object per read, its checks and socket wrappers) was two thirds of the instructions of
a two-command call (numbers in docs/decisions.md, "Redis calls on the store's own
connections" and "The user read prepared").

A connection that fails is closed (never returned to the idle list); a call on a connection
that had been idle and turns out dead (the server restarted since) is sent once more on a new
one. Errors and timeouts are a :class:`StoreUnavailableError`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
from redis.connection import AbstractConnection

from stores.errors import StoreUnavailableError

Command = Sequence[Any]
_READ_BYTES = 65536


def _reply_error(message: str) -> redis.ResponseError:
    """A refused command's reply, returned in its place (``NOSCRIPT``: the script must be
    loaded again, as redis-py names it)."""
    if message.startswith("NOSCRIPT "):
        return redis.exceptions.NoScriptError(message[len("NOSCRIPT ") :])
    return redis.ResponseError(message)


class _Link:
    """One open connection: redis-py's ``Connection`` (which made the handshake and closes
    the socket), its socket, and a reply reader of its own."""

    __slots__ = ("conn", "reader", "sock")

    def __init__(self, conn: AbstractConnection) -> None:
        conn.connect()
        self.conn = conn
        # the connection's socket once connected (redis-py has no public name for it;
        # tests/stores/test_redis_calls.py fails when that changes)
        self.sock = conn._sock
        enc = conn.encoder
        decoding = (
            {"encoding": enc.encoding, "errors": enc.encoding_errors}
            if enc.decode_responses
            else {}
        )
        self.reader = hiredis.Reader(
            protocolError=redis.exceptions.InvalidResponse, replyError=_reply_error, **decoding
        )

    def exchange(self, packed: bytes, n: int) -> list[Any]:
        """Write ``packed`` (``n`` commands) and read ``n`` replies."""
        self.sock.sendall(packed)
        replies: list[Any] = []
        reader = self.reader
        while len(replies) < n:
            reply = reader.gets()
            if reply is False:  # no whole reply buffered yet
                chunk = self.sock.recv(_READ_BYTES)
                if not chunk:
                    raise redis.ConnectionError("Redis closed the connection")
                reader.feed(chunk)
            else:
                replies.append(reply)
        return replies

    def close(self) -> None:
        self.conn.disconnect()


class Calls:
    """Commands sent in one write and their replies, on connections made like ``client``'s
    (same server, database, credentials, protocol and timeouts); thread-safe."""

    def __init__(self, client: redis.Redis, *, keep: int = 8) -> None:
        pool = client.connection_pool
        self._make = lambda: pool.connection_class(**pool.connection_kwargs)
        self._keep = keep
        self._idle: list[_Link] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _take(self) -> tuple[_Link, bool]:
        """A connection and whether it had been idle (it may have died meanwhile)."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child never uses its parent's sockets
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop(), True
        try:
            return _Link(self._make()), False
        except redis.RedisError as exc:
            raise StoreUnavailableError(f"Redis: {exc}") from None

    def _give_back(self, link: _Link) -> None:
        with self._lock:
            if len(self._idle) < self._keep and self._pid == os.getpid():
                self._idle.append(link)
                return
        link.close()

    def run(self, *commands: Command) -> list[Any]:
        """Send ``commands`` in one write and read their replies, in order. A command the
        server refused (a ``ResponseError``, e.g. ``NoScriptError``) is returned in its
        place, not raised; connection errors and timeouts raise StoreUnavailableError."""
        try:
            packed = b"".join([hiredis.pack_command(tuple(c)) for c in commands])
        except TypeError as exc:  # an argument that is not bytes, text or a number
            raise redis.DataError(str(exc)) from None
        for attempt in (1, 2):
            link, was_idle = self._take()
            try:
                replies = link.exchange(packed, len(commands))
            except TimeoutError:
                link.close()  # a reply may be left unread: the connection is unusable
                raise StoreUnavailableError("Redis: no answer within the budget") from None
            except (OSError, redis.RedisError) as exc:
                link.close()
                if was_idle and attempt == 1 and isinstance(exc, OSError | redis.ConnectionError):
                    continue  # the server restarted since this connection was last used
                raise StoreUnavailableError(f"Redis: {exc}") from None
            except BaseException:
                link.close()  # a reply may be left unread: the connection is unusable
                raise
            self._give_back(link)
            return replies
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for link in idle:
            link.close()
