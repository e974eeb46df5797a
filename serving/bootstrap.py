"""Start-up state of the user profiles: who the users are, what they viewed and bought.

:func:`load_profiles` builds the :class:`~ranking.profile.ProfileStore` the API starts with:

* the user directory (consent, attributes) from ``<data_dir>/users.jsonl``, read column-wise;
* the history snapshot (last ``settings.bootstrap_history`` events and the purchases of every
  user) from the shop's events file in ``data_dir`` (``events.parquet`` or ``events.jsonl``,
  as training reads it) plus the durable event log, leaving out users without consent and
  users erased over the API;
* the API's user journal (``<state_dir>/users.jsonl``) replayed on top.

The arrays are cached in ``<state_dir>/profiles/<key>/`` as ``.npy`` files, where the key
hashes the size and modification time of every source file. A later start with unchanged
sources — and the second uvicorn worker — memory-maps them instead of reading the events
again (shared pages, near-zero start-up). A file lock makes one process build while the
others wait. Any change (a new event in the log, a user changed over the API) makes the next
start rebuild.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from data.journals import UserJournal
from ranking.history import HistorySnapshot, build_snapshot
from ranking.profile import ProfileStore, UserDirectory

if TYPE_CHECKING:
    import pyarrow as pa

    from core.settings import Settings
    from data.catalog import Catalog

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
_SNAPSHOT_ARRAYS = ("user_ids", "item_ids", "recent_ptr", "recent_items", "recent_types",
                    "bought_ptr", "bought_items")
_DIRECTORY_ARRAYS = ("user_ids", "consent", "attr_code")


def events_file(data_dir: Path) -> Path | None:
    """The shop's events file, as training's default config picks it."""
    for name in ("events.parquet", "events.jsonl"):
        if (data_dir / name).is_file():
            return data_dir / name
    return None


def _signature(paths: list[Path]) -> list[tuple[str, int, int]]:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    return out


def _log_partitions(events_dir: Path) -> list[Path]:
    return sorted(events_dir.glob("????-??-??.jsonl")) if events_dir.is_dir() else []


# ---------------------------------------------------------------------------- users file
def read_directory(path: Path) -> UserDirectory:
    """Consent and attributes of every user in a users file, column-wise (1M users ≈ 2 s).

    Falls back to validating row by row (reporting bad rows) for unusual layouts.
    """
    if not path.exists():
        return UserDirectory.empty()
    try:
        return _directory_columnar(path)
    except Exception as exc:  # odd layouts: the validating reader reports each bad row
        log.info("reading %s row by row (%s)", path.name, exc)
        from data.journals import read_users_file

        return UserDirectory.from_users(read_users_file(path))


def _directory_columnar(path: Path) -> UserDirectory:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    t = pj.read_json(path)
    ids = t.column("user_id")
    if not pa.types.is_string(ids.type):
        raise ValueError("user_id is not a string column")
    if pc.any(pc.is_null(ids)).as_py():
        raise ValueError("a user_id is missing")
    if "consent" in t.column_names:
        c = t.column("consent")
        if not pa.types.is_boolean(c.type):
            raise ValueError("consent is not a boolean column")
        consent = c.to_numpy(zero_copy_only=False)
        consent = np.where(pc.is_null(c).to_numpy(zero_copy_only=False), True, consent).astype(bool)
    else:
        consent = np.ones(t.num_rows, bool)
    # Attributes: interned combinations (users share few), found by encoding each field.
    n = t.num_rows
    combo = np.zeros(n, np.int64)
    fields: list[str] = []
    if "attributes" in t.column_names and pa.types.is_struct(t.column("attributes").type):
        attrs = t.column("attributes").combine_chunks()
        for k in range(attrs.type.num_fields):
            f = attrs.field(k)
            if pa.types.is_struct(f.type) or pa.types.is_list(f.type):
                raise ValueError(f"attribute {attrs.type.field(k).name} is not a plain value")
            enc = f.dictionary_encode()
            codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64) + 1
            combo = combo * (len(enc.dictionary) + 1) + codes
            fields.append(attrs.type.field(k).name)
    uniq, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
    attr_maps: list[MappingProxyType[str, object]] = []
    if fields:
        rows = t.column("attributes").take(pa.array(first)).to_pylist()
        for r in rows:
            attr_maps.append(
                MappingProxyType({k: v for k, v in (r or {}).items() if v is not None})
            )
    else:
        attr_maps = [MappingProxyType({})] * len(uniq)
    user_ids = ids.to_numpy(zero_copy_only=False).astype(str)
    # The last row of a user wins (like reading the file into a dict).
    order = np.argsort(user_ids, kind="stable")
    sorted_ids = user_ids[order]
    last = np.ones(len(order), bool)
    last[:-1] = sorted_ids[1:] != sorted_ids[:-1]
    order = order[last]
    return UserDirectory(
        user_ids[order],
        consent[order],
        inverse.reshape(-1)[order].astype(np.int32),
        tuple(attr_maps),
    )  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- cache
@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _save(
    folder: Path, snap: HistorySnapshot, directory: UserDirectory, meta: dict[str, object]
) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".build-"))
    try:
        for name in _SNAPSHOT_ARRAYS:
            np.save(tmp / f"snapshot.{name}.npy", getattr(snap, name))
        for name in _DIRECTORY_ARRAYS:
            np.save(tmp / f"directory.{name}.npy", getattr(directory, name))
        attrs = [dict(a) for a in directory.attrs]
        (tmp / "meta.json").write_text(
            json.dumps({**meta, "attrs": attrs}, ensure_ascii=False), "utf-8"
        )
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(folder: Path) -> tuple[HistorySnapshot, UserDirectory] | None:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        # memory-mapped (pages shared by every worker), handed out as plain ndarray views:
        # indexing a np.memmap costs a subclass round trip on every call
        snap = HistorySnapshot(**{
            n: np.asarray(np.load(folder / f"snapshot.{n}.npy", mmap_mode="r", allow_pickle=False))
            for n in _SNAPSHOT_ARRAYS})
        arrays = {
            n: np.asarray(np.load(folder / f"directory.{n}.npy", mmap_mode="r", allow_pickle=False))
            for n in _DIRECTORY_ARRAYS
        }
        directory = UserDirectory(**arrays, attrs=tuple(MappingProxyType(a) for a in meta["attrs"]))
    except (OSError, ValueError, KeyError) as exc:
        log.warning("profile cache %s unreadable (%s); rebuilding", folder, exc)
        return None
    return snap, directory


def drop_profile_cache(state_dir: Path) -> int:
    """Delete every cached snapshot (after an erasure: they hold the user's history and
    attributes). Running workers keep the pages they mapped; the next start builds anew.
    Returns how many were deleted."""
    root = state_dir / "profiles"
    if not root.is_dir():
        return 0
    n = 0
    with _locked(root / ".lock"):
        for folder in root.iterdir():
            if folder.is_dir():
                shutil.rmtree(folder)
                n += 1
    return n


# ---------------------------------------------------------------------------- entry
def load_profiles(
    settings: Settings, catalog: Catalog | None = None, *, cache: bool = True
) -> ProfileStore:
    """The profile store the API starts with (see the module docstring)."""
    t0 = time.perf_counter()
    users_file = settings.data_dir / "users.jsonl"
    journal = UserJournal(settings.state_dir / "users.jsonl")
    ev_file = events_file(settings.data_dir)
    partitions = _log_partitions(settings.events_dir)
    sources = _signature([users_file, journal.path, *([ev_file] if ev_file else []), *partitions])
    per_user = settings.bootstrap_history
    key = hashlib.sha256(json.dumps([CACHE_FORMAT, per_user, sources]).encode()).hexdigest()[:20]
    root = settings.state_dir / "profiles"
    got = None
    if cache:
        with _locked(root / ".lock"):
            got = _load(root / key)
            if got is None:
                got = _build(users_file, journal, ev_file, partitions, per_user)
                try:
                    _save(root / key, *got, {"sources": sources, "per_user": per_user})
                    for old in root.iterdir():
                        if old.is_dir() and old.name != key:
                            shutil.rmtree(old, ignore_errors=True)
                    got = _load(root / key) or got  # memory-map what was just written
                except OSError as exc:
                    log.warning("cannot cache the profiles in %s (%s)", root, exc)
            else:
                log.info("profiles memory-mapped from the cache %s", root / key)
    else:
        got = _build(users_file, journal, ev_file, partitions, per_user)
    snapshot, directory = got
    store = ProfileStore(history_size=settings.history_size, directory=directory,
                         snapshot=snapshot, catalog=catalog)
    for op, rec in journal.replay():
        if op == "erase":
            store.erase(rec)  # type: ignore[arg-type]
        else:
            store.upsert_users([rec])  # type: ignore[list-item]
    log.info("profiles ready in %.1fs: %d users, %d with history (%d events, %d purchases)",
             time.perf_counter() - t0, len(directory), len(snapshot), snapshot.n_events,
             snapshot.bought_items.size)
    return store


def _build(
    users_file: Path,
    journal: UserJournal,
    ev_file: Path | None,
    partitions: list[Path],
    per_user: int,
) -> tuple[HistorySnapshot, UserDirectory]:
    from data.journals import excluded_by_journal

    directory = read_directory(users_file)
    exclude = set(directory.no_consent_ids())
    excluded, consented = excluded_by_journal(journal.path.parent)
    exclude = (exclude - consented) | excluded
    tables: list[pa.Table] = []
    columns = ["user_id", "item_id", "type", "timestamp"]
    from data.loaders import read_events_table

    if ev_file is not None:
        tables.append(read_events_table([ev_file], columns=columns))
    if partitions:
        tables.append(read_events_table(partitions, columns=columns))
    snap = build_snapshot(tables, per_user=per_user, exclude_users=exclude)
    return snap, directory
