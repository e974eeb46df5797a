"""One CPU per worker (``shoprank serve --workers N --pin-workers``), for a box of its own.

Unpinned, the kernel may move a worker between cores as other work comes and goes, and a
worker that moves finds its caches cold. Pinned, each worker stays on a core of its own (what
it gains was measured: docs/decisions.md). On a box shared with other programs a pinned worker
cannot move to an idle core, so pinning is a choice, not the default.

Each worker claims a slot: an exclusive ``flock`` on ``cpu-<k>.lock`` in the folder the
workers of the run share (``SHOPRANK_WORKERS_DIR``), held for the worker's life. The kernel
releases it when the process ends, however it ends, so the worker uvicorn starts in place of
a dead one claims the core its predecessor had. Slot ``k`` is the ``k``-th CPU this process
may run on; every thread of the worker is moved onto it, and threads started later inherit it.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

_held: list[int] = []
"""The lock held by this process (one file descriptor, open for the process's life)."""


def usable_cpus() -> list[int]:
    """The CPUs this process may run on, in order (empty where the OS cannot say)."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    return sorted(os.sched_getaffinity(0))


def claim_cpu(folder: Path, cpus: list[int] | None = None) -> int | None:
    """Claim the first free slot in ``folder``: its CPU, or None when every slot is held
    (more workers than CPUs) or the OS cannot pin. Call once per process."""
    cpus = usable_cpus() if cpus is None else cpus
    for k, cpu in enumerate(cpus):
        fd = os.open(folder / f"cpu-{k}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        _held.append(fd)
        return cpu
    return None


def pin_process(cpu: int) -> None:
    """Move every thread of this process onto ``cpu`` (threads started later inherit it)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), {cpu})
        except (ProcessLookupError, FileNotFoundError):
            pass  # a thread that ended meanwhile


def pin_worker(folder: Path) -> int | None:
    """Claim a CPU (:func:`claim_cpu`) and pin this process to it; the CPU, or None."""
    cpu = claim_cpu(folder)
    if cpu is None:
        log.warning("pin_workers: no free CPU for worker %d; it runs unpinned", os.getpid())
        return None
    pin_process(cpu)
    log.info("worker %d pinned to CPU %d", os.getpid(), cpu)
    return cpu
