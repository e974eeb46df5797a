"""Spread keep-alive connections evenly over the workers of one ``shoprank serve --workers N``.

uvicorn's workers share one listening socket, and a worker that wakes accepts every
connection queued at that moment: a client opening 8 connections at once lands them 6/2, 7/1
or 8/0 on two workers, and keep-alive keeps them there. A connection closed by the keep-alive
limit is mostly accepted again by the worker that closed it, so the split does not even out by
itself. The busier worker's requests then wait in a queue up to twice as deep as an even split
gives.

Each worker counts its *active* connections (those that sent a request within the last
``window`` seconds) and publishes the count in a 24-byte file of its own, in the folder the
workers of the run share (``SHOPRANK_WORKERS_DIR``: ``shoprank serve`` sets it to the
Prometheus multiprocess folder, emptied at each start, when it starts more than one worker).
Counts are compared once every worker's covers a whole window. A worker holding more than its
share (all workers' active connections divided by the workers, rounded up) answers one request
with ``Connection: close``, at most one every ``gap`` seconds. The client reconnects and the
connection lands on whichever worker accepts it; repeated, the counts even out (nginx's
``accept_disabled`` has the same aim).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from pathlib import Path

ENV = "SHOPRANK_WORKERS_DIR"
"""The folder of the workers' load files, set by ``shoprank serve`` for its workers."""
_SLOT = struct.Struct("<qdd")
"""A load file: the active connections, the ``time.monotonic()`` they were counted at (one
clock for every process of the machine), and since when the worker has been counting without
a pause (a count is complete once a whole window has passed)."""

Key = tuple[str, int]


class WorkerLoads:
    """This worker's active connections, and whether it holds more than its share."""

    def __init__(
        self,
        folder: Path,
        name: str | None = None,
        *,
        window: float = 0.1,
        recount: float = 0.02,
        rescan: float = 1.0,
        gap: float = 0.05,
    ) -> None:
        self.folder = folder
        self.name = name or str(os.getpid())
        self.window, self.recount, self.rescan, self.gap = window, recount, rescan, gap
        self._mine = _open(folder / f"{self.name}.load", write=True)
        self._peers: dict[str, mmap.mmap] = {}
        self._seen: dict[Key, float] = {}  # connection → when it last sent a request
        self.active = 0
        self.share = 0
        self.complete = False  # every worker's count covers a whole window
        self._counted = self._scanned = self._shed = self._since = float("-inf")

    @classmethod
    def from_env(cls) -> WorkerLoads | None:
        folder = os.environ.get(ENV)
        return cls(Path(folder)) if folder else None

    def forget(self, key: Key) -> None:
        """The connection is closing (its last response says so)."""
        if self._seen.pop(key, None) is not None:
            self.active = max(0, self.active - 1)

    def should_close(self, key: Key, now: float) -> bool:
        """Note a request on ``key`` at ``now``; True when this worker holds more than its
        share and this response should close its connection."""
        self._seen[key] = now
        if now - self._counted >= self.recount:
            self._count(now)
        if self.complete and self.active > self.share and now - self._shed >= self.gap:
            self._shed = now
            self.forget(key)
            return True
        return False

    def _count(self, now: float) -> None:
        cutoff = now - self.window
        if self._counted < cutoff:  # the first request after a pause: counting afresh
            self._since = now
        self._counted = now
        self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}
        self.active = len(self._seen)
        _SLOT.pack_into(self._mine, 0, self.active, now, self._since)
        if now - self._scanned >= self.rescan:
            self._scan(now)
        total, stale = self.active, cutoff - self.recount
        complete = now - self._since >= self.window
        for m in self._peers.values():
            n, at, since = _SLOT.unpack_from(m, 0)
            if at >= stale:  # a worker that counted nothing lately has no active connection
                total += n
                complete = complete and at - since >= self.window
        workers = 1 + len(self._peers)
        self.share = -(-total // workers)
        self.complete = complete

    def _scan(self, now: float) -> None:
        """Map the other workers' load files; a file left by a worker that died is removed
        (its replacement writes a file of its own)."""
        self._scanned = now
        names = set()
        for path in self.folder.glob("*.load"):
            name = path.stem
            if name == self.name:
                continue
            if name.isdigit() and not _alive(int(name)):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            names.add(name)
            if name not in self._peers:
                with contextlib.suppress(OSError, ValueError):  # gone, or not yet sized
                    self._peers[name] = _open(path, write=False)
        for gone in set(self._peers) - names:
            self._peers.pop(gone).close()


def _open(path: Path, *, write: bool) -> mmap.mmap:
    fd = os.open(path, (os.O_RDWR | os.O_CREAT) if write else os.O_RDONLY, 0o600)
    try:
        if write:
            os.ftruncate(fd, _SLOT.size)
        return mmap.mmap(fd, _SLOT.size, access=mmap.ACCESS_WRITE if write else mmap.ACCESS_READ)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        pass
    return True
