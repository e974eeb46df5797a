"""The embedded index's generations on disk: one directory per generation (``gen-<n>``) and a
``CURRENT`` file naming the live one.

A rebuild writes a new generation (:meth:`Generations.create`) and then replaces ``CURRENT``
atomically (:meth:`Generations.publish`); readers in this process or another one (the API
server) follow ``CURRENT`` when it changes (:meth:`Generations.live`) and reload a
generation's searchers when a commit, here or elsewhere, rewrote its ``meta.json``
(:meth:`Generations.version`). The previous generation is kept so that a searcher still
holding it never fails; older ones are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.fsutil import atomic_write
from search.errors import IndexNotFoundError, SearchError
from search.tantivy_query import Vocabulary
from search.tantivy_schema import SCHEMA_VERSION

if TYPE_CHECKING:
    import tantivy

_CURRENT = "CURRENT"
_GEN_PREFIX = "gen-"


@dataclass
class Generation:
    name: str
    index: tantivy.Index
    vocabulary: Vocabulary | None = None
    commit_stamp: tuple[int, int, int] | None = None
    """(mtime, inode, size) of the generation's ``meta.json``, rewritten by every commit
    and merge, by this process or another."""
    version: int = 0
    """Bumped whenever ``commit_stamp`` moves; caches of this generation key on it."""
    meta_path: str = ""
    """The generation's ``meta.json`` (a plain string: stat on every search)."""


class Generations:
    """The generations of the index in ``root`` and which one is live for this process."""

    def __init__(self, root: Path, schema: tantivy.Schema) -> None:
        self.root = root
        self._schema = schema
        self._current_path = str(root / _CURRENT)  # stat on every search: no Path objects
        self._gen: Generation | None = None
        self._current_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _current_file(self) -> Path:
        return self.root / _CURRENT

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._current_path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    def _open(self, name: str) -> Generation:
        import tantivy

        path = self.root / name
        meta = path / "shoprank.json"
        try:
            version = json.loads(meta.read_text())["schema_version"]
        except (OSError, ValueError, KeyError) as exc:
            raise IndexNotFoundError(
                f"search index {path} is incomplete; rebuild it with `shoprank index`"
            ) from exc
        if version != SCHEMA_VERSION:
            raise IndexNotFoundError(
                f"search index {path} has schema v{version}, this code needs v{SCHEMA_VERSION}; "
                "rebuild it with `shoprank index`"
            )
        return Generation(name, tantivy.Index(self._schema, path=str(path), reuse=True))

    def live(self, *, create: bool = False) -> Generation:
        """The live generation, following ``CURRENT`` when another writer swapped it;
        ``create``: start an empty one when there is none."""
        if self._closed:
            raise SearchError("the search backend is closed; open a new one")
        stamp = self._stamp()
        gen = self._gen
        if gen is not None and stamp == self._current_stamp:
            return gen
        with self._lock:
            stamp = self._stamp()
            if self._gen is not None and stamp == self._current_stamp:
                return self._gen
            if stamp is None:
                if not create:
                    raise IndexNotFoundError(
                        f"no search index in {self.root}; build it with `shoprank index`"
                    )
                self._write_current(self._new_directory())
                stamp = self._stamp()
            name = self._current_file().read_text().strip()
            if self._gen is None or self._gen.name != name:
                self._gen = self._open(name)
            self._current_stamp = stamp
            return self._gen

    def version(self, gen: Generation) -> int:
        """The generation's state: when a commit (here or in another process) rewrote its
        ``meta.json``, reload its searchers now and bump the version caches key on."""
        if not gen.meta_path:
            gen.meta_path = str(self.root / gen.name / "meta.json")
        try:
            st = os.stat(gen.meta_path)
            stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != gen.commit_stamp:
            with self._lock:
                if stamp != gen.commit_stamp:
                    gen.index.reload()
                    gen.commit_stamp = stamp
                    gen.version += 1
        return gen.version

    def current_name(self) -> str | None:
        """The generation this process or ``CURRENT`` names, None before the first."""
        if self._gen is not None:
            return self._gen.name
        if self._stamp() is not None:
            return self._current_file().read_text().strip()
        return None

    def _new_directory(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{_GEN_PREFIX}{time.time_ns()}"
        path = self.root / name
        path.mkdir()
        (path / "shoprank.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
        return name

    def create(self) -> Generation:
        """A new, empty generation, not live until :meth:`publish`."""
        import tantivy

        name = self._new_directory()
        try:
            return Generation(name, tantivy.Index(self._schema, path=str(self.root / name),
                                                  reuse=False))
        except BaseException:
            self.discard(name)
            raise

    def discard(self, name: str) -> None:
        shutil.rmtree(self.root / name, ignore_errors=True)

    def _write_current(self, name: str) -> None:
        atomic_write(self._current_file(), (name + "\n").encode("utf-8"))

    def publish(self, gen: Generation, *, previous: str | None) -> None:
        """Make ``gen`` live (``CURRENT`` replaced atomically); keep ``previous`` for the
        searchers that still hold it and remove every older generation."""
        self._write_current(gen.name)
        with self._lock:
            self._gen = gen
            self._current_stamp = self._stamp()
        keep = {gen.name} | ({previous} if previous else set())
        for p in self.root.glob(f"{_GEN_PREFIX}*"):
            if p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)

    def close(self) -> None:
        self._closed = True
        self._gen = None
