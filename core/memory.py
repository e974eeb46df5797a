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
import functools
import logging
import sqlite3
from typing import Any

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
"""``mallopt`` parameter number of ``M_ARENA_MAX`` (glibc's ``malloc.h``)."""


@functools.cache
def _c_function(library: str, name: str, restype: Any, *argtypes: Any) -> Any:
    """``name`` from the shared library ``library`` (``c``, ``sqlite3``) with its types, or
    None when the library or the function is not there (musl has no ``mallopt``)."""
    path = ctypes.util.find_library(library)
    try:
        fn = getattr(ctypes.CDLL(path), name)
    except (OSError, AttributeError, TypeError):
        log.info("%s: not in the C library %s (%s)", name, library, path)
        return None
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


def limit_malloc_arenas(arenas: int) -> bool:
    """Let glibc create at most ``arenas`` malloc arenas in this process from now on (0: leave
    its default). Call before the process starts its threads. Returns whether it applied
    (False on a C library without ``mallopt``, such as musl)."""
    mallopt = _c_function("c", "mallopt", ctypes.c_int, ctypes.c_int, ctypes.c_int)
    if arenas <= 0 or mallopt is None:
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def release_free_heap() -> bool:
    """Give the pages the heap holds free back to the OS (glibc's ``malloc_trim(0)``, which
    also releases whole free pages in the middle of the heap, not only at its top). Start-up
    parses the whole catalog and loads the models: memory freed after it stays resident
    otherwise. Returns whether it applied (False on a C library without ``malloc_trim``)."""
    trim = _c_function("c", "malloc_trim", ctypes.c_int, ctypes.c_size_t)
    if trim is None:
        return False
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
    used = _c_function("sqlite3", "sqlite3_memory_used", ctypes.c_int64)
    return None if used is None else int(used())
