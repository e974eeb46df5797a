"""Durable user records (and catalog changes) made over the API: append-only, fsync'ed journals.

``<state_dir>/users.jsonl`` holds one line per change, ``{"op": "upsert", "user": {...}}`` or
``{"op": "erase", "user_id": "..."}``. The users the shop was loaded with
(``<data_dir>/users.jsonl``) come first, then the journal is replayed on top, so the latest
consent and attributes win. Training keeps users without consent (and erased users) out of the
interaction matrix with :func:`excluded_by_journal` on top of the users file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from core.errors import describe
from core.fsutil import append_jsonl, atomic_write
from data.models import Item, User
from data.quarantine import set_aside

log = logging.getLogger(__name__)


class UserJournal:
    """Writers of every process take ``<path>.lock`` (an erasure rewrites the file; an append
    of another worker must not go to the file being replaced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def _append(self, records: list[dict[str, object]]) -> None:
        with self._exclusive():
            append_jsonl(self.path, records)

    def upsert(self, users: list[User]) -> None:
        self._append([{"op": "upsert", "user": u.model_dump(mode="json")} for u in users])

    def erase(self, user_id: str) -> None:
        """Record the erasure (with its time) and drop the user's earlier records (their
        attributes) from the journal: the file is rewritten (temp file, fsync, rename) when it
        holds any."""
        rec = {"op": "erase", "user_id": user_id, "at": datetime.now(UTC).isoformat()}
        with self._exclusive():
            lines = self.path.read_bytes().splitlines(keepends=True) if self.path.exists() else []
            keep = [ln for ln in lines if _user_of(ln) != user_id]
            if len(keep) == len(lines):
                append_jsonl(self.path, [rec])
                return
            record = json.dumps(rec, ensure_ascii=False) + "\n"
            atomic_write(self.path, b"".join(keep) + record.encode("utf-8"))

    def replay(self) -> Iterator[tuple[str, User | str]]:
        """Yield ``("upsert", User)`` or ``("erase", user_id)`` in journal order."""
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    if rec["op"] == "erase":
                        yield "erase", str(rec["user_id"])
                    else:
                        yield "upsert", User.model_validate(rec["user"])
                except (ValueError, KeyError, TypeError) as exc:
                    why = describe(exc) if isinstance(exc, ValidationError) else str(exc)
                    log.warning("%s line %d set aside: %s", self.path.name, lineno, why)


class CatalogJournal:
    """Catalog changes made over the API, one line each (``{"op": "upsert", "item": {...}}``
    or ``{"op": "delete", "item_id": "..."}``), appended and fsync'ed: a change is durable
    once its line is here. The other workers follow it (``serving.follow``); ``items.jsonl``
    is written behind it (``serving.catalog_saver``), and a starting worker replays what the
    file does not hold yet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def upsert(self, items: list[Item]) -> None:
        with self._lock:
            append_jsonl(
                self.path, [{"op": "upsert", "item": it.model_dump(mode="json")} for it in items]
            )

    def delete(self, item_ids: list[str]) -> None:
        with self._lock:
            append_jsonl(self.path, [{"op": "delete", "item_id": i} for i in item_ids])


def _user_of(line: bytes) -> str | None:
    """The user an upsert line of the journal is about (None for other lines)."""
    try:
        rec = json.loads(line)
        return str(rec["user"]["user_id"]) if rec.get("op") == "upsert" else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def read_users_file(path: Path) -> Iterator[User]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield User.model_validate_json(line)
            except ValidationError as exc:
                set_aside(path, [(lineno, describe(exc), line)])


def load_users(data_dir: Path, state_dir: Path) -> dict[str, User]:
    """The current users: the shop's users file with the API's changes replayed on top."""
    users = {u.user_id: u for u in read_users_file(data_dir / "users.jsonl")}
    for op, rec in UserJournal(state_dir / "users.jsonl").replay():
        if op == "erase":
            users.pop(rec, None)  # type: ignore[arg-type]
        else:
            users[rec.user_id] = rec  # type: ignore[union-attr]
    return users


def erased_user_ids(state_dir: Path) -> set[str]:
    """Users erased over the API (and not re-created since): their data must stay out."""
    erased: set[str] = set()
    for op, rec in UserJournal(state_dir / "users.jsonl").replay():
        if op == "erase":
            erased.add(rec)  # type: ignore[arg-type]
        else:
            erased.discard(rec.user_id)  # type: ignore[union-attr]
    return erased


def excluded_by_journal(state_dir: Path) -> tuple[set[str], set[str]]:
    """What the API changed about consent: ``(excluded, consented)``.

    ``excluded``: users erased over the API, or whose latest upsert withdrew consent — their
    events must stay out of training and profiles whatever the users file says.
    ``consented``: users whose latest upsert gave consent (this overrides a ``consent: false``
    in the users file). Users the journal never mentions are in neither set.
    """
    latest: dict[str, bool | None] = {}
    for op, rec in UserJournal(state_dir / "users.jsonl").replay():
        if op == "erase":
            latest[rec] = None  # type: ignore[index]
        else:
            latest[rec.user_id] = rec.consent  # type: ignore[union-attr]
    excluded = {u for u, c in latest.items() if not c}
    consented = {u for u, c in latest.items() if c}
    return excluded, consented
