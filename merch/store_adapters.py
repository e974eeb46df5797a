"""The merchandising stores (``RuleStore``, ``ExperimentStore``, ``RequestLog``) over the
``stores`` package, so rules, experiments and the request log can live in PostgreSQL.

Drop-in replacements for ``SqliteRuleStore``, ``SqliteExperimentStore`` and
``SqliteRequestLog`` (same protocols, same errors, same JSON): a rule's document is its
``RuleSpec`` JSON under its ``rule_set``; an experiment's is its ``ExperimentSpec`` JSON plus
its status and times, under its status. Not used by serving yet (see docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from data.buffered_table import BufferedWriter
from data.models import stored_records
from merch.errors import (
    ExperimentError,
    ExperimentNotFoundError,
    RuleConflictError,
    RuleNotFoundError,
)
from merch.experiment_store import SqliteExperimentStore
from merch.experiments import Experiment, ExperimentSpec
from merch.request_log import SERVED_COLUMNS, ServedRequest, SqliteRequestLog
from merch.rules.model import Rule, sort_rules
from merch.rules.spec import RuleSpec
from merch.rules.store import SqliteRuleStore
from stores import ConflictError, Document, NotFoundError, ServedList, StoreError, Stores
from stores import protocols as sp

log = logging.getLogger(__name__)

_TIMES = ("created_at", "started_at", "stopped_at")


class DocumentRuleStore:
    """``merch.rules.store.RuleStore`` over a ``stores`` rule store."""

    def __init__(self, docs: sp.RuleStore) -> None:
        self.docs = docs

    def list(self, rule_set: str | None = None) -> list[Rule]:
        docs = self.docs.list(rule_set)
        with stored_records():
            return sort_rules([RuleSpec.model_validate_json(d.body).to_rule() for d in docs])

    def get(self, rule_id: str) -> Rule:
        try:
            body = self.docs.get(rule_id).body
        except NotFoundError:
            raise RuleNotFoundError(rule_id) from None
        with stored_records():
            return RuleSpec.model_validate_json(body).to_rule()

    def put(self, rule: Rule, *, create: bool = False) -> None:
        doc = Document(rule.rule_id, rule.rule_set, RuleSpec.of(rule).model_dump_json())
        try:
            self.docs.put(doc, create=create)
        except ConflictError:
            raise RuleConflictError(rule.rule_id) from None

    def delete(self, rule_id: str) -> None:
        try:
            self.docs.delete(rule_id)
        except NotFoundError:
            raise RuleNotFoundError(rule_id) from None

    def revision(self) -> int:
        return self.docs.revision()


class DocumentExperimentStore:
    """``merch.experiment_store.ExperimentStore`` over a ``stores`` experiment store."""

    def __init__(self, docs: sp.ExperimentStore) -> None:
        self.docs = docs

    @staticmethod
    def _experiment(doc: Document) -> Experiment:
        data = json.loads(doc.body)
        times: dict[str, datetime | None] = {}
        for k in _TIMES:
            v = data.pop(k, None)
            times[k] = datetime.fromisoformat(v) if v else None
        status = data.pop("status")
        with stored_records():
            e = ExperimentSpec.model_validate(data).to_experiment()
        return dataclasses.replace(e, status=status, created_at=times["created_at"],
                                   started_at=times["started_at"],
                                   stopped_at=times["stopped_at"])

    def list(self) -> list[Experiment]:
        got = [self._experiment(d) for d in self.docs.list()]
        # newest first, as SqliteExperimentStore lists them
        got.sort(key=lambda e: e.experiment_id)
        got.sort(key=lambda e: e.created_at.timestamp() if e.created_at else 0.0, reverse=True)
        return got

    def get(self, experiment_id: str) -> Experiment:
        try:
            return self._experiment(self.docs.get(experiment_id))
        except NotFoundError:
            raise ExperimentNotFoundError(experiment_id) from None

    def put(self, experiment: Experiment, *, create: bool = False) -> None:
        e = experiment
        body = ExperimentSpec.of(e).model_dump(mode="json")
        body["status"] = e.status
        for k in _TIMES:
            t = getattr(e, k)
            body[k] = t.isoformat() if t else None
        doc = Document(e.experiment_id, e.status, json.dumps(body, ensure_ascii=False),
                       created_at=e.created_at)
        try:
            self.docs.put(doc, create=create)
        except ConflictError:
            raise ExperimentError(
                f"an experiment with id {e.experiment_id!r} already exists; pick another id"
            ) from None

    def delete(self, experiment_id: str) -> None:
        try:
            self.docs.delete(experiment_id)
        except NotFoundError:
            raise ExperimentNotFoundError(experiment_id) from None

    def revision(self) -> int:
        return self.docs.revision()


def _served(r: ServedList) -> ServedRequest:
    return ServedRequest(r.request_id, r.at, r.surface, r.user_id, r.experiment, r.variant,
                         r.query, r.item_id)


class StoreRequestLog:
    """``merch.request_log.RequestLog`` over a ``stores`` request log.

    Like ``SqliteRequestLog``, a request only appends to a buffer; a thread writes it every
    ``flush_seconds`` or once ``batch`` rows wait, and readers flush first. A failed write
    keeps the rows for the next try (logged), so a store that is down never fails a request.
    """

    def __init__(self, store: sp.RequestLogStore, *, flush_seconds: float = 1.0,
                 batch: int = 500) -> None:
        self.store = store
        self._writer: BufferedWriter[ServedList] = BufferedWriter(
            store.record_encoded, name="request log", errors=(StoreError,),
            flush_seconds=flush_seconds, batch=batch, encode=store.encode,
        )

    def record(self, *, request_id: str, at: datetime, surface: str, user_id: str | None = None,
               experiment: str | None = None, variant: str | None = None,
               query: str | None = None, item_id: str | None = None) -> None:
        self._writer.append(
            ServedList(request_id, at, surface, user_id, experiment, variant, query, item_id)
        )

    def flush(self) -> None:
        self._writer.flush()

    def lookup(self, request_ids: Iterable[str]) -> dict[str, ServedRequest]:
        self.flush()
        return {k: _served(v) for k, v in self.store.lookup(request_ids).items()}

    def lookup_columns(self, request_ids: Sequence[str], *, experiment: str | None = None,
                       columns: Sequence[str] = SERVED_COLUMNS) -> dict[str, list[str | None]]:
        self.flush()
        return self.store.lookup_columns(request_ids, experiment=experiment, columns=columns)

    def recent(self, surface: str | None = None, limit: int = 1000) -> list[ServedRequest]:
        self.flush()
        return [_served(r) for r in self.store.recent(surface, limit)]

    def forget_user(self, user_id: str, *,
                    served_between: tuple[datetime, datetime] | None = None) -> int:
        self.flush()
        return self.store.forget_user(user_id, served_between=served_between)

    def prune(self, now: datetime | None = None) -> int:
        """Drop the day partitions older than the store's ``keep_days``; returns how many."""
        self.flush()
        return self.store.prune(now)

    def close(self) -> None:
        self._writer.close()


def import_sqlite_merch(state_dir: Path, stores: Stores) -> dict[str, int]:
    """Copy rules, experiments and served requests from today's SQLite files under
    ``state_dir`` (``rules.sqlite``, ``experiments.sqlite``, ``requests.sqlite``) into
    ``stores``, once: ids already there are left alone, so running it again copies nothing.
    Returns how many of each were copied. For switching a shop to the stores without losing
    its merchandising."""
    copied = {"rules": 0, "experiments": 0, "requests": 0}
    if (state_dir / "rules.sqlite").exists():
        old_rules = SqliteRuleStore(state_dir / "rules.sqlite")
        rules = DocumentRuleStore(stores.rules)
        have = {d.doc_id for d in stores.rules.list()}
        for rule in old_rules.list():
            if rule.rule_id not in have:
                rules.put(rule, create=True)
                copied["rules"] += 1
        old_rules.close()
    if (state_dir / "experiments.sqlite").exists():
        old_exps = SqliteExperimentStore(state_dir / "experiments.sqlite")
        exps = DocumentExperimentStore(stores.experiments)
        have = {d.doc_id for d in stores.experiments.list()}
        for e in old_exps.list():
            if e.experiment_id not in have:
                exps.put(e, create=True)
                copied["experiments"] += 1
    if (state_dir / "requests.sqlite").exists():
        old_log = SqliteRequestLog(state_dir / "requests.sqlite", flush_seconds=3600)
        batch: list[ServedList] = []
        for row in old_log:
            batch.append(ServedList(row.request_id, row.at, row.surface, row.user_id,
                                    row.experiment, row.variant, row.query, row.item_id))
            if len(batch) >= 5000:
                copied["requests"] += _copy_new(stores, batch)
                batch = []
        copied["requests"] += _copy_new(stores, batch)
        old_log.close()
    log.info("copied from %s: %s", state_dir, copied)
    return copied


def _copy_new(stores: Stores, rows: list[ServedList]) -> int:
    known = stores.requests.lookup(r.request_id for r in rows)
    new = [r for r in rows if r.request_id not in known]
    stores.requests.record(new)
    return len(new)
