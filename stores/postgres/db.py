"""PostgreSQL access for the shared stores: a small pool, a time budget on every call,
versioned migrations and NOTIFY.

Time budget (``StoreOptions.timeout_seconds``, default 1 s):

* opening a connection first sends PostgreSQL's 8-byte SSL request on a plain socket with
  that timeout, so a server that accepts TCP but does not answer fails within the budget
  (libpq's own ``connect_timeout`` cannot go below 2 s);
* every statement runs under ``statement_timeout`` and ``lock_timeout`` on the server, and a
  process-wide watchdog shuts the connection's socket down when a call overruns the budget
  (a server that stopped answering: the blocked read returns at once with an error);
* either way the caller gets a :class:`StoreUnavailableError`; the connection is discarded.

Bulk reads and maintenance (migrations, training reads, partition drops) pass their own
budget (``None``: no limit).

Each store's tables live in the connection's schema (``search_path`` from the URL's
``options``, default ``public``); NOTIFY goes to a channel named after that schema, so two
shops may share one database in two schemas.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import os
import socket
import struct
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from stores.errors import StoreConfigError, StoreUnavailableError
from stores.records import CHANGE_MAX_KEYS

log = logging.getLogger(__name__)

SETTING = "SHOPRANK_DATABASE_URL"
SLOW_SECONDS = 60.0
"""Budget of maintenance calls (erasures, retention, migrations)."""
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_TUPLES = pq.ExecStatus.TUPLES_OK
_COMMAND_OK = pq.ExecStatus.COMMAND_OK
_BAD = pq.ConnStatus.BAD
MAX_PAYLOAD = 7000
"""NOTIFY payloads are limited to 8000 bytes; a longer change is sent without its ids."""

Migration = tuple[int, str, str]


class _ConnectionLost(StoreUnavailableError):
    """The connection failed (not a timeout): the server went away or restarted."""


class _Watchdog:
    """One thread per process that shuts down the socket of a call past its deadline."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._armed: dict[int, tuple[float, int]] = {}
        self._fired: set[int] = set()
        self._heap: list[tuple[float, int]] = []
        self._ids = itertools.count(1)
        self._pid = os.getpid()
        threading.Thread(target=self._run, name="pg-watchdog", daemon=True).start()

    def arm(self, fd: int, seconds: float) -> int:
        token = next(self._ids)
        deadline = time.monotonic() + seconds
        with self._cv:
            self._armed[token] = (deadline, fd)
            first = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, token))
            if first:
                self._cv.notify()
        return token

    def disarm(self, token: int) -> bool:
        """Stop watching; returns whether the deadline had fired."""
        with self._cv:
            self._armed.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._cv:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cv.wait()
                    continue
                deadline, token = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                heapq.heappop(self._heap)
                _, fd = self._armed.pop(token)
                self._fired.add(token)
                _shutdown(fd)


def _shutdown(fd: int) -> None:
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        s.close()


_watchdog: _Watchdog | None = None
_watchdog_lock = threading.Lock()


def watchdog() -> _Watchdog:
    """The process's watchdog (a new one after a fork: threads do not survive it)."""
    global _watchdog
    dog = _watchdog
    if dog is not None and dog._pid == os.getpid():  # every call: no lock once it runs
        return dog
    with _watchdog_lock:
        if _watchdog is None or _watchdog._pid != os.getpid():
            _watchdog = _Watchdog()
        return _watchdog


def _check(pgconn: pq.abc.PGconn, res: pq.abc.PGresult, want: pq.ExecStatus) -> None:
    """Raise what psycopg would for a result that is not ``want``: an OperationalError when
    the connection failed, else the error class of the result's SQLSTATE."""
    if res.status == want:
        return
    if pgconn.status == _BAD:
        msg = (pgconn.error_message or b"").decode("utf-8", "replace").strip()
        raise psycopg.OperationalError(msg or "the connection failed")
    raise pg_errors.error_from_result(res)


def _where(params: dict[str, Any]) -> str:
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"


class PgDatabase:
    """Connections to one database (schema), pooled per process; thread-safe."""

    def __init__(
        self, url: str, *, timeout: float, pool_size: int = 4, synchronous_commit: bool = True
    ) -> None:
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError as exc:
            raise StoreConfigError(SETTING, f"not a PostgreSQL URL: {exc}") from exc
        self.timeout = timeout
        self.where = _where(params)
        ms = max(1, int(timeout * 1000))
        options = " ".join(
            x
            for x in (
                str(params.pop("options", "") or ""),
                f"-c statement_timeout={ms} -c lock_timeout={ms}",
                "-c idle_in_transaction_session_timeout=60000 -c TimeZone=UTC",
                "" if synchronous_commit else "-c synchronous_commit=off",
            )
            if x
        )
        self._params = {
            **params,
            "options": options,
            "application_name": "shoprank",
            "connect_timeout": max(2, int(timeout + 0.999)),
        }
        self._pool_size = pool_size
        self._idle: list[psycopg.Connection[Any]] = []
        self._prepared: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[bytes]] = (
            weakref.WeakKeyDictionary()
        )
        """The statements :meth:`read_prepared` prepared on each connection."""
        self._lock = threading.Lock()
        try:
            conn = self._connect()
        except StoreUnavailableError as exc:
            raise StoreConfigError(
                SETTING,
                f"cannot reach PostgreSQL at {self.where} ({exc}); start the server "
                "(scripts/postgres start) or fix the URL",
            ) from None
        self.schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        self.channel = "shoprank_" + "".join(c if c.isalnum() else "_" for c in self.schema)[:50]
        self._release(conn)

    # -- connections ---------------------------------------------------------------------

    def _probe(self) -> None:
        """Fail within the budget when nothing answers PostgreSQL's first message."""
        host = str(self._params.get("host") or "")
        if not host or host.startswith("/") or "," in host:
            return  # Unix socket or several hosts: libpq's own timeout applies
        port = int(self._params.get("port") or 5432)
        try:
            with socket.create_connection((host, port), timeout=self.timeout) as s:
                s.settimeout(self.timeout)
                s.sendall(_SSL_REQUEST)
                if not s.recv(1):
                    raise StoreUnavailableError(f"PostgreSQL at {self.where} closed the connection")
        except TimeoutError:
            raise StoreUnavailableError(
                f"PostgreSQL at {self.where} did not answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            why = exc.strerror or exc
            raise StoreUnavailableError(f"PostgreSQL at {self.where}: {why}") from None

    def _connect(self) -> psycopg.Connection[Any]:
        self._probe()
        try:
            return psycopg.connect(make_conninfo("", **self._params), autocommit=True)
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"PostgreSQL at {self.where}: {exc}".strip()) from None

    def _acquire(self) -> psycopg.Connection[Any]:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        return self._connect()

    def _release(self, conn: psycopg.Connection[Any]) -> None:
        # libpq's status directly (conn.info builds an object on every call); 0: idle
        if conn.closed or conn.broken or conn.pgconn.transaction_status != 0:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled connection in autocommit mode (each statement is its own transaction: one
        round trip, no BEGIN / COMMIT), under the store's budget."""
        return self._guarded(self.timeout)

    def insert_columns(self, sql: bytes, rows: Sequence[Sequence[Any]], chunk: int = 500) -> None:
        """``sql`` (one array parameter per column, ``unnest``-ed) run on ``rows`` turned into
        columns, ``chunk`` rows a statement, each autocommitted: a statement whatever a batch's
        size, so psycopg parses it once and prepares it."""
        for i in range(0, len(rows), chunk):
            columns = [list(c) for c in zip(*rows[i : i + chunk], strict=True)]
            with self.connection() as conn:
                conn.execute(sql, columns)

    @contextmanager
    def tx(self, timeout: float | None | bool = True) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction, committed when the block ends.

        ``timeout``: True for the store's budget, a number of seconds, or None for no limit.
        Server errors that are the caller's (unique violations …) pass through unchanged.
        """
        seconds = self.timeout if timeout is True else (None if timeout is None else float(timeout))
        with self._guarded(seconds) as conn, conn.transaction():
            if seconds != self.timeout:
                ms = 0 if seconds is None else max(1, int(seconds * 1000))
                conn.execute(f"SET LOCAL statement_timeout = {ms}".encode())
                conn.execute(f"SET LOCAL lock_timeout = {ms}".encode())
            yield conn

    @contextmanager
    def _guarded(self, seconds: float | None) -> Iterator[psycopg.Connection[Any]]:
        """Acquire, watch the deadline, map connection failures to StoreUnavailableError,
        and return the connection to the pool only when it is sound."""
        conn = self._acquire()
        dog = watchdog()
        token = dog.arm(conn.fileno(), seconds) if seconds is not None else None
        fired = broken = False
        try:
            yield conn
        except (pg_errors.QueryCanceled, pg_errors.LockNotAvailable) as exc:
            raise StoreUnavailableError(
                f"PostgreSQL at {self.where}: no answer within {seconds:g} s ({exc})".strip()
            ) from None
        except psycopg.OperationalError as exc:
            broken = True
            fired = token is not None and dog.disarm(token)
            token = None
            if fired:
                raise StoreUnavailableError(
                    f"PostgreSQL at {self.where} did not answer within {seconds:g} s"
                ) from None
            # the server went away or restarted: the idle connections are as dead as this one
            self.close()
            raise _ConnectionLost(f"PostgreSQL at {self.where}: {exc}".strip()) from None
        finally:
            if token is not None:
                fired = dog.disarm(token)
            if fired or broken or conn.broken:
                conn.close()
            else:
                self._release(conn)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """One read-only statement (autocommit); the rows it returns. A connection found
        dead (the server restarted since it was pooled) is replaced once."""
        for attempt in (1, 2):
            try:
                with self.connection() as conn:
                    cur = conn.execute(sql.encode(), params)
                    # the result's status, not cur.description (a list of column objects)
                    res = cur.pgresult
                    return cur.fetchall() if res is not None and res.status == _TUPLES else []
            except _ConnectionLost:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def read_prepared(
        self, name: str, sql: str, args: Sequence[str]
    ) -> list[tuple[bytes | None, ...]]:
        """A read-only statement on a request's path (``$1``… placeholders, text arguments),
        prepared once per connection and run through libpq itself: its rows as the server's
        text (bytes; None for NULL), without psycopg's per-call adapters, cursor and
        generator (docs/decisions.md, "The user read prepared"). Budget and errors as
        :meth:`execute`, and a connection found dead is replaced once."""
        key = name.encode()
        params = [a.encode() for a in args]
        if any(b"\0" in p for p in params):  # libpq would cut a text argument at a NUL
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        for attempt in (1, 2):
            try:
                with self.connection() as conn:
                    pgconn = conn.pgconn
                    with self._lock:
                        names = self._prepared.setdefault(conn, set())
                    if key not in names:
                        _check(pgconn, pgconn.prepare(key, sql.encode()), _COMMAND_OK)
                        names.add(key)
                    res = pgconn.exec_prepared(key, params)
                    _check(pgconn, res, _TUPLES)
                    width = res.nfields
                    return [tuple(res.get_value(r, c) for c in range(width))
                            for r in range(res.ntuples)]
            except _ConnectionLost:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def notify(self, conn: psycopg.Connection[Any], topic: str, keys: Sequence[str],
               cursor: int | None = None) -> None:
        """Queue a change notification in ``conn``'s transaction (sent on commit)."""
        payload = json.dumps({"t": topic, "k": list(keys), "c": cursor}, ensure_ascii=False)
        if len(keys) > CHANGE_MAX_KEYS or len(payload.encode()) > MAX_PAYLOAD:
            payload = json.dumps({"t": topic, "k": None, "c": cursor})
        conn.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))

    def listen_connection(self) -> psycopg.Connection[Any]:
        """A new connection of its own (not pooled), listening on the change channel."""
        conn = self._connect()
        conn.execute(f"LISTEN {self.channel}")
        return conn

    # -- migrations ----------------------------------------------------------------------

    def migrate(self, migrations: Sequence[Migration]) -> list[int]:
        """Apply the migrations not recorded in ``schema_version`` (under an advisory lock,
        so replicas starting together apply each once); returns the versions applied."""
        applied: list[int] = []
        with self.tx(SLOW_SECONDS) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.migrate'))")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_version")}
            for version, name, script in sorted(migrations):
                if version in done:
                    continue
                conn.execute(script.encode())  # several statements, no parameters
                conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES (%s, %s)", (version, name)
                )
                applied.append(version)
                log.info("PostgreSQL %s: applied migration %d (%s)", self.schema, version, name)
        return applied

    def versions(self) -> list[int]:
        return [r[0] for r in self.execute("SELECT version FROM schema_version ORDER BY 1")]

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
