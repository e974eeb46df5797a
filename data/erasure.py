"""Erasing one user from the shop's import files (``<data_dir>/users.jsonl`` and the events
file, ``events.parquet`` or ``events.jsonl``).

The event, user, shopper-state and request-log stores forget an erased user on their own
(``DELETE /v1/users/{id}``); training and the first start's import also leave out every user
the user store records as erased. These files are what the shop was loaded from, and they
would still hold the user's attributes and past events: :func:`erase_from_shop_files`
rewrites each file that mentions the user without them (a temporary file, fsync'ed, renamed
over it, so a reader sees the old file or the new one). A file that does not mention the user
is left as it is.

Cost: the users file and a JSONL events file are scanned as bytes (only lines holding the id
are parsed). A parquet events file is first read by its ``user_id`` column, one row group
at a time; only when the user is in it is the whole file written again (``python
bench/admin_writes.py``: 19 s for 1M users and 20M events with the user, 1.2 s without).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.fsutil import atomic_replace, atomic_write

USERS_FILE = "users.jsonl"
EVENTS_FILES = ("events.parquet", "events.jsonl")
"""The events files training reads and the stores import at a first start (:func:`events_file`)."""


def events_file(data_dir: Path) -> Path | None:
    """The shop's events file, as training's default config picks it."""
    for name in EVENTS_FILES:
        if (data_dir / name).is_file():
            return data_dir / name
    return None


@dataclass(frozen=True, slots=True)
class ShopFilesErased:
    users: int
    """Lines of the users file that were the user's."""
    events: int
    """The user's events removed from the events file(s)."""


@contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """One erasure at a time per shop (two workers rewriting one file would lose one's change)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".erase.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        yield


def erase_from_shop_files(data_dir: Path, user_id: str) -> ShopFilesErased:
    """Rewrite the shop's users and events files without ``user_id``; returns what went."""
    with _exclusive(data_dir):
        users = _erase_jsonl(data_dir / USERS_FILE, user_id)
        events = 0
        for name in EVENTS_FILES:
            path = data_dir / name
            if name.endswith(".parquet"):
                events += _erase_parquet(path, user_id)
            else:
                events += _erase_jsonl(path, user_id)
    return ShopFilesErased(users=users, events=events)


def _erase_jsonl(path: Path, user_id: str) -> int:
    """Drop the lines whose ``user_id`` is ``user_id``; returns how many."""
    if not path.is_file():
        return 0
    needle = json.dumps(user_id, ensure_ascii=False)[1:-1].encode("utf-8")
    data = path.read_bytes()
    if needle not in data:
        return 0
    keep: list[bytes] = []
    gone = 0
    for line in data.splitlines(keepends=True):
        if needle in line:
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None  # an unreadable line stays as it was (the loaders set it aside)
            if isinstance(rec, dict) and rec.get("user_id") == user_id:
                gone += 1
                continue
        keep.append(line)
    if gone:
        atomic_write(path, keep)
    return gone


def _erase_parquet(path: Path, user_id: str) -> int:
    """Drop the rows whose ``user_id`` is ``user_id``; returns how many."""
    if not path.is_file():
        return 0
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    src = pq.ParquetFile(path)
    if "user_id" not in src.schema_arrow.names:
        return 0
    hits = 0
    for g in range(src.metadata.num_row_groups):
        col = src.read_row_group(g, columns=["user_id"]).column("user_id")
        hits += int(pc.sum(pc.equal(col.cast(pa.string()), user_id)).as_py() or 0)
    if not hits:
        return 0
    meta = src.metadata
    compression = meta.row_group(0).column(0).compression.lower() if meta.num_row_groups else "zstd"
    gone = 0
    with atomic_replace(path) as tmp, pq.ParquetWriter(
        tmp, src.schema_arrow, compression=compression if compression != "uncompressed" else "none"
    ) as out:
        for g in range(meta.num_row_groups):
            table = src.read_row_group(g)
            keep = pc.not_equal(table.column("user_id").cast(pa.string()), user_id)
            kept = table.filter(pc.fill_null(keep, True))
            gone += table.num_rows - kept.num_rows
            out.write_table(kept)
    return gone
