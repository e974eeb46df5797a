"""``items.jsonl`` written behind the API's catalog changes instead of on each one.

An upsert or delete over the API is durable once its line is in the catalog journal
(``<state_dir>/catalog.jsonl``, appended and fsync'ed: :class:`data.journals.CatalogJournal`).
Writing the whole catalog file as well used to be part of every change: 2 s of one worker's
CPU at 100k items, most of it holding the GIL, so a shop sending item updates one by one
stalled that worker's requests for seconds at a time. :class:`CatalogSaver` writes it once
the changes pause (``catalog_save_delay_seconds``, at most five times that while they keep
coming), and on shutdown.

``<state_dir>/catalog.saved`` says how much of the journal the written file holds
(``{"inode": …, "offset": …}``, written after the file). A worker starting up loads
``items.jsonl`` and replays the journal from there (from its start when the marker is
missing or names another file): replaying a line the file already holds is harmless, since
every worker applies the journal in file order. So the catalog a worker starts with is the
file plus every change acknowledged since, whether or not anyone had written the file yet.

Other readers of ``items.jsonl`` (training, ``shoprank index``) see it at most that delay
behind a running server, and after a crash until a server starts and saves again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from pathlib import Path

from core.fsutil import atomic_write
from data.catalog import Catalog
from serving.follow import JournalTail

log = logging.getLogger(__name__)

MARKER_FILE = "catalog.saved"


def journal_start(state_dir: Path, journal: Path) -> tuple[int, int]:
    """Where a starting worker replays the catalog journal from: (inode, offset) of the marker
    when it names the journal as it is now, else the journal's start."""
    try:
        st = journal.stat()
    except FileNotFoundError:
        return 0, 0
    try:
        got = json.loads((state_dir / MARKER_FILE).read_text("utf-8"))
        inode, offset = int(got["inode"]), int(got["offset"])
    except (OSError, ValueError, KeyError, TypeError):
        return st.st_ino, 0
    if inode != st.st_ino or not 0 <= offset <= st.st_size:
        return st.st_ino, 0
    return inode, offset


class CatalogSaver:
    """Writes ``catalog`` to ``path`` on a thread of its own after :meth:`changed`.

    ``tail`` is the worker's follower of the catalog journal: before writing, the saver brings
    in what other workers appended (under a file lock every saver of the shop takes), so the
    file holds the journal up to the offset it records."""

    def __init__(
        self,
        catalog: Catalog,
        path: Path,
        tail: JournalTail,
        state_dir: Path,
        *,
        delay: float = 2.0,
    ) -> None:
        self.catalog = catalog
        self.path = path
        self.tail = tail
        self.state_dir = state_dir
        self.delay = delay
        self.saves = 0
        """How many times the file was written (tests and operators)."""
        self._dirty = False
        self._last_change = 0.0
        self._first_change = 0.0
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="catalog-saver", daemon=True)
        self._thread.start()

    def changed(self) -> None:
        """A change is in the journal: write the file once the changes pause."""
        now = time.monotonic()
        with self._cv:
            if not self._dirty:
                self._first_change = now
            self._dirty = True
            self._last_change = now
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._dirty and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                now = time.monotonic()
                due = min(self._last_change + self.delay, self._first_change + 5 * self.delay)
                if now < due:
                    self._cv.wait(due - now)
                    continue
                self._dirty = False
            try:
                self.save()
            except Exception:  # the journal holds every change; the next change retries
                log.exception("writing the catalog to %s failed; the journal keeps the changes",
                              self.path)

    def save(self) -> None:
        """Bring in the other workers' changes, write the file, then the marker."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            self.tail.sync()
            inode, offset = self.tail.position()  # every line up to here is in the catalog
            self.catalog.save(self.path)
            atomic_write(self.state_dir / MARKER_FILE,
                         json.dumps({"inode": inode, "offset": offset}).encode("utf-8"))
        self.saves += 1

    def close(self) -> None:
        """Stop the thread; write the file if a change is still unwritten."""
        with self._cv:
            self._closed = True
            dirty = self._dirty
            self._dirty = False
            self._cv.notify()
        self._thread.join(timeout=60)
        if dirty:
            try:
                self.save()
            except OSError as exc:
                log.warning("writing the catalog to %s at shutdown failed (%s); the journal keeps "
                            "the changes and the next start replays them", self.path, exc)
