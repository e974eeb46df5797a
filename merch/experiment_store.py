"""Durable storage for experiments: ``experiments.sqlite`` under ``settings.state_dir``, with a
revision counter readers use to reload. It implements ``merch.experiments.ExperimentStore``;
a shared store for several API hosts implements the same protocol on a shared database.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import threading
from pathlib import Path

from core.fsutil import FileGuard
from core.memory import small_page_cache
from data.models import stored_records
from merch.errors import ExperimentError, ExperimentNotFoundError
from merch.experiments import Experiment, ExperimentSpec, experiment_as_dict
from merch.request_log import _dt, _ts

log = logging.getLogger(__name__)




def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, timeout=10)
    db.execute("PRAGMA journal_mode=WAL")
    small_page_cache(db)
    return db

class SqliteExperimentStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = _connect(path)
        with self._lock:
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS experiments (
                    experiment_id TEXT PRIMARY KEY, spec TEXT NOT NULL, status TEXT NOT NULL,
                    created_at TEXT, started_at TEXT, stopped_at TEXT);
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
                """
            )
            self._db.commit()
        self._guard = FileGuard(path)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> SqliteExperimentStore:
        return cls(state_dir / "experiments.sqlite")

    def _row(self, row: tuple[str, str, str | None, str | None, str | None]) -> Experiment:
        spec, status, created, started, stopped = row
        with stored_records():
            e = ExperimentSpec.model_validate_json(spec).to_experiment()
        return dataclasses.replace(
            e,
            status=status,  # type: ignore[arg-type]
            created_at=_dt(created),
            started_at=_dt(started),
            stopped_at=_dt(stopped),
        )

    def list(self) -> list[Experiment]:
        with self._lock:
            rows = self._db.execute(
                "SELECT spec, status, created_at, started_at, stopped_at FROM experiments "
                "ORDER BY created_at DESC, experiment_id"
            ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, experiment_id: str) -> Experiment:
        with self._lock:
            row = self._db.execute(
                "SELECT spec, status, created_at, started_at, stopped_at FROM experiments "
                "WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchone()
        if row is None:
            raise ExperimentNotFoundError(experiment_id)
        return self._row(row)

    def put(self, experiment: Experiment, *, create: bool = False) -> None:
        e = experiment
        values = (
            e.experiment_id,
            ExperimentSpec.of(e).model_dump_json(),
            e.status,
            _ts(e.created_at),
            _ts(e.started_at),
            _ts(e.stopped_at),
        )
        with self._lock:
            self._guard.check()
            try:
                verb = "INSERT" if create else "INSERT OR REPLACE"
                self._db.execute(f"{verb} INTO experiments VALUES (?, ?, ?, ?, ?, ?)", values)
            except sqlite3.IntegrityError:
                self._db.rollback()
                raise ExperimentError(
                    f"an experiment with id {e.experiment_id!r} already exists; pick another id"
                ) from None
            self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
            self._db.commit()

    def delete(self, experiment_id: str) -> None:
        with self._lock:
            self._guard.check()
            cur = self._db.execute(
                "DELETE FROM experiments WHERE experiment_id = ?", (experiment_id,)
            )
            if cur.rowcount == 0:
                self._db.rollback()
                raise ExperimentNotFoundError(experiment_id)
            self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
            self._db.commit()

    def revision(self) -> int:
        with self._lock:
            return int(
                self._db.execute("SELECT value FROM meta WHERE key='revision'").fetchone()[0]
            )


def dumps(e: Experiment) -> str:
    """The experiment as JSON (for files and logs)."""
    return json.dumps(experiment_as_dict(e), ensure_ascii=False)
