"""Durable storage for merchandising rules.

:class:`RuleStore` is the interface the rest of the code uses; :class:`SqliteRuleStore` is the
embedded default (one SQLite file under ``settings.state_dir``, WAL mode, safe for several
processes on one machine). A shared store for several API hosts (PostgreSQL, OpenSearch) only
has to implement the same five methods; :meth:`RuleStore.revision` lets readers cache rules
and reload them only when something changed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from core.fsutil import FileGuard
from core.memory import small_page_cache
from data.models import stored_records
from merch.errors import RuleConflictError, RuleNotFoundError
from merch.rules.model import Rule, sort_rules
from merch.rules.spec import RuleSpec

log = logging.getLogger(__name__)


@runtime_checkable
class RuleStore(Protocol):
    def list(self, rule_set: str | None = None) -> list[Rule]:
        """Rules in the documented order (priority, then id), optionally of one rule set."""
        ...

    def get(self, rule_id: str) -> Rule:
        """The rule, or :class:`RuleNotFoundError`."""
        ...

    def put(self, rule: Rule, *, create: bool = False) -> None:
        """Insert or replace; with ``create=True`` an existing id is a
        :class:`RuleConflictError`."""
        ...

    def delete(self, rule_id: str) -> None: ...

    def revision(self) -> int:
        """A number that changes whenever any rule changes."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (
    rule_id TEXT PRIMARY KEY,
    rule_set TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
"""


class SqliteRuleStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=10)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            small_page_cache(self._db)
            self._db.executescript(_SCHEMA)
            self._db.commit()
        self._guard = FileGuard(path)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SqliteRuleStore:
        return cls(state_dir / "rules.sqlite")

    def list(self, rule_set: str | None = None) -> list[Rule]:
        with self._lock:
            if rule_set is None:
                rows = self._db.execute("SELECT spec FROM rules").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT spec FROM rules WHERE rule_set = ?", (rule_set,)
                ).fetchall()
        with stored_records():
            return sort_rules([RuleSpec.model_validate_json(r[0]).to_rule() for r in rows])

    def get(self, rule_id: str) -> Rule:
        with self._lock:
            row = self._db.execute(
                "SELECT spec FROM rules WHERE rule_id = ?", (rule_id,)
            ).fetchone()
        if row is None:
            raise RuleNotFoundError(rule_id)
        with stored_records():
            return RuleSpec.model_validate_json(row[0]).to_rule()

    def put(self, rule: Rule, *, create: bool = False) -> None:
        now = datetime.now(UTC).isoformat()
        spec = RuleSpec.of(rule).model_dump_json()
        with self._lock:
            self._guard.check()
            try:
                if create:
                    self._db.execute(
                        "INSERT INTO rules VALUES (?, ?, ?, ?, ?)",
                        (rule.rule_id, rule.rule_set, spec, now, now),
                    )
                else:
                    self._db.execute(
                        "INSERT INTO rules VALUES (?, ?, ?, ?, ?) ON CONFLICT(rule_id) DO UPDATE "
                        "SET rule_set = excluded.rule_set, spec = excluded.spec, "
                        "updated_at = excluded.updated_at",
                        (rule.rule_id, rule.rule_set, spec, now, now),
                    )
            except sqlite3.IntegrityError:
                self._db.rollback()
                raise RuleConflictError(rule.rule_id) from None
            self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
            self._db.commit()
        log.info("rule %s saved (rule set %s)", rule.rule_id, rule.rule_set)

    def delete(self, rule_id: str) -> None:
        with self._lock:
            self._guard.check()
            cur = self._db.execute("DELETE FROM rules WHERE rule_id = ?", (rule_id,))
            if cur.rowcount == 0:
                self._db.rollback()
                raise RuleNotFoundError(rule_id)
            self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
            self._db.commit()
        log.info("rule %s deleted", rule_id)

    def revision(self) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0]
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
