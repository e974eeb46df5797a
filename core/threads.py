"""The CPU priority of a process's background threads."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

BACKGROUND_NICE = 10
"""The nice value of background threads: under a full machine the scheduler gives such a
thread about a tenth of the CPU share of a request's thread (weights 110 and 1,024)."""


def lower_this_threads_priority(nice: int = BACKGROUND_NICE) -> None:
    """Give the calling thread the nice value ``nice`` (Linux: a thread has one of its own;
    elsewhere nothing is changed, since there the call would apply to a whole process).

    For threads doing bulk work beside request threads (writing the logs' batches): with
    every core busy they take CPU time from requests only when no request thread wants it."""
    if sys.platform != "linux":
        return
    # not permitted here (a nice value may only rise): left as it is
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
