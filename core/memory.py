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
