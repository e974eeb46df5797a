"""File-system durability helpers shared by the event log, the registry and other writers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import StorageUnavailableError


class FileGuard:
    """Notices when a file a long-lived connection holds open (a SQLite database) is deleted
    or replaced under it: writes through the old handle would still succeed, into a file no
    restart will read, so a writer calls :meth:`check` first and refuses instead."""

    def __init__(self, path: Path) -> None:
        self.path = path
        st = path.stat()
        self._identity = (st.st_dev, st.st_ino)

    def check(self) -> None:
        try:
            st = self.path.stat()
        except OSError:
            raise StorageUnavailableError(
                f"{self.path} was deleted while in use; nothing was saved — restore it from a "
                "backup or restart the server to start it anew"
            ) from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise StorageUnavailableError(
                f"{self.path} was replaced while in use; nothing was saved — restart the server "
                "to use the new file"
            )


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a created or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_jsonl(path: Path, records: list[dict[str, object]]) -> None:
    """Append one JSON object a line to ``path`` and fsync it (the file and, when created, its
    folder). Callers serialize their own writers; one ``write`` call keeps lines whole."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if created:
        fsync_dir(path.parent)


@contextmanager
def atomic_replace(path: Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder to write (by any writer that takes a path, e.g.
    a parquet writer); when the block ends without an error it is fsync'ed and renamed over
    ``path``, then the folder fsync'ed; on an error it is removed. Readers see the old file
    or the new one, never a part."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Replace ``path`` with ``data`` (bytes, or chunks written as they come) atomically
    (see :func:`atomic_replace`)."""
    with atomic_replace(path) as tmp, open(tmp, "wb") as fh:
        if isinstance(data, bytes):
            fh.write(data)
        else:
            fh.writelines(data)
