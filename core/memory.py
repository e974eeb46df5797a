"""Process-level memory settings: how many malloc arenas glibc may create.

glibc gives each thread that allocates its own arena (up to 8 per core). A server's threads
(the event loop, the thread pool that runs blocking handlers, the log writers, the change
watcher) allocate and free in turn, and memory freed in one arena is not reused by another:
each arena keeps its high-water mark and fragments, so a long-running worker grows slowly
under a steady load. Two arenas are shared by all threads: the heap stops growing once the
working set is reached (``docs/decisions.md``, "malloc arenas")."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sqlite3
from typing import Any

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""``mallopt`` parameter number of ``M_ARENA_MAX`` (glibc's ``malloc.h``)."""


def limit_malloc_arenas(arenas: int) -> bool:
    """Let glibc create at most ``arenas`` malloc arenas in this process from now on (0: leave
    its default). Call before the process starts its threads. Returns whether it applied
    (False on a C library without ``mallopt``, such as musl)."""
    if arenas <= 0:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        log.info("malloc arenas not limited: no mallopt in the C library (%s)", name)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def release_free_heap() -> bool:
    """Give the pages the heap holds free back to the OS (glibc's ``malloc_trim(0)``, which
    also releases whole free pages in the middle of the heap, not only at its top). Start-up
    parses the whole catalog and loads the models: memory freed after it stays resident
    otherwise. Returns whether it applied (False on a C library without ``malloc_trim``)."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        log.info("free heap not released: no malloc_trim in the C library (%s)", name)
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True


SQLITE_PAGE_CACHE_KIB = 512
"""Page cache of every SQLite connection, per process and file. SQLite's default (2,000 KiB)
is heap memory that fills as distinct pages are read, for minutes under a steady load on a
large file; the OS page cache holds the same pages once for every process, so a miss costs
one ``pread`` (at 1M users the same lookups measured 30.3 µs at 512 KiB and 30.0 µs at 2,000:
``docs/decisions.md``, "SQLite page caches")."""


def small_page_cache(conn: sqlite3.Connection, kib: int = SQLITE_PAGE_CACHE_KIB) -> None:
    """Bound ``conn``'s page cache to ``kib`` KiB."""
    conn.execute(f"PRAGMA cache_size=-{int(kib)}")


def sqlite_heap_bytes() -> int | None:
    """Heap memory SQLite holds in this process (page caches, statements), or None when the
    library that Python's ``sqlite3`` uses cannot be asked."""
    global _memory_used
    if _memory_used is None:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
            fn = lib.sqlite3_memory_used
        except (OSError, AttributeError, TypeError):
            _memory_used = False
            return None
        fn.restype = ctypes.c_int64
        fn.argtypes = []
        _memory_used = fn
    return None if _memory_used is False else int(_memory_used())


_memory_used: Any = None
