"""The merchandising stores over ``stores`` behave like today's SQLite ones, on both backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from merch.errors import (
    ExperimentError,
    ExperimentNotFoundError,
    RuleConflictError,
    RuleNotFoundError,
)
from merch.experiment_store import SqliteExperimentStore
from merch.experiments import ExperimentSpec
from merch.request_log import SqliteRequestLog
from merch.rules.spec import RuleSpec
from merch.rules.store import SqliteRuleStore
from merch.store_adapters import (
    DocumentExperimentStore,
    DocumentRuleStore,
    StoreRequestLog,
    import_sqlite_merch,
)
from tests.stores.conftest import NOW, Backend


def rules() -> list:
    specs = [
        {"id": "pin-dress", "name": "Pin", "priority": 10,
         "condition": {"contexts": ["search"], "query": {"text": "連衣裙", "match": "contains"}},
         "actions": [{"type": "pin", "pins": [{"item_id": "i42", "position": 1}]}]},
        {"id": "bury-acme", "name": "Bury", "rule_set": "holiday",
         "start": "2026-12-01T00:00:00Z", "end": "2026-12-08T00:00:00Z",
         "condition": {"contexts": ["feed"]},
         "actions": [{"type": "bury", "filter": {"brands": ["ACME"]}, "weight": 1.0}]},
        {"id": "a-hide", "name": "Hide", "priority": 10,
         "actions": [{"type": "hide", "filter": {"in_stock": False}}]},
    ]
    return [RuleSpec.model_validate(s).to_rule() for s in specs]


def test_rules_round_trip_like_the_sqlite_store(backend: Backend, tmp_path: Path) -> None:
    ours = DocumentRuleStore(backend.open().rules)
    theirs = SqliteRuleStore(tmp_path / "rules.sqlite")
    for store in (ours, theirs):
        for r in rules():
            store.put(r, create=True)
        with pytest.raises(RuleConflictError):
            store.put(rules()[0], create=True)
    assert ours.list() == theirs.list()  # same rules, same order (priority, then id)
    assert ours.list("holiday") == theirs.list("holiday")
    assert ours.get("pin-dress") == theirs.get("pin-dress")
    r0 = ours.revision()
    ours.delete("a-hide")
    assert ours.revision() > r0
    with pytest.raises(RuleNotFoundError):
        ours.get("a-hide")
    with pytest.raises(RuleNotFoundError):
        ours.delete("a-hide")
    theirs.close()


def experiment(eid: str) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "id": eid, "name": "blend test", "surfaces": ["feed"],
        "audience": {"lifecycle": ["at_risk", "active"]},
        "variants": [{"name": "A", "share": 50},
                     {"name": "B", "share": 50,
                      "overrides": {"blend_weights": {"cf": 0.9}, "rule_set": "holiday"}}],
    })


def test_experiments_round_trip_like_the_sqlite_store(backend: Backend, tmp_path: Path) -> None:
    ours = DocumentExperimentStore(backend.open().experiments)
    theirs = SqliteExperimentStore(tmp_path / "experiments.sqlite")
    t = datetime(2026, 12, 1, 12, tzinfo=UTC)
    first = replace(experiment("x1").to_experiment(), created_at=t)
    second = replace(experiment("x2").to_experiment(), created_at=t + timedelta(hours=1),
                     status="running", started_at=t + timedelta(hours=2))
    for store in (ours, theirs):
        store.put(first, create=True)
        store.put(second, create=True)
        with pytest.raises(ExperimentError, match="already exists"):
            store.put(first, create=True)
        store.put(replace(second, status="stopped", stopped_at=t + timedelta(days=3)))
    assert ours.list() == theirs.list()  # newest first
    got = ours.get("x2")
    assert got == theirs.get("x2")
    assert (got.status, got.stopped_at) == ("stopped", t + timedelta(days=3))
    assert got.audience == (("lifecycle", ("at_risk", "active")),)
    ours.delete("x1")
    with pytest.raises(ExperimentNotFoundError):
        ours.get("x1")


def test_request_log_answers_like_the_sqlite_log(backend: Backend, tmp_path: Path) -> None:
    ours = StoreRequestLog(backend.open().requests, flush_seconds=3600)
    theirs = SqliteRequestLog(tmp_path / "requests.sqlite", flush_seconds=3600)
    for log in (ours, theirs):
        for n in range(6):
            log.record(request_id=f"r{n}", at=NOW - timedelta(minutes=n), surface="feed",
                       user_id=f"u{n % 2}", experiment="x" if n % 3 else None,
                       variant="B" if n % 3 else None, query=None, item_id=None)
    assert ours.lookup(["r1", "r4", "zz"]) == theirs.lookup(["r1", "r4", "zz"])
    assert ours.recent(limit=4) == theirs.recent(limit=4)
    mine = ours.lookup_columns(["r1", "r2", "r3"], experiment="x")
    other = theirs.lookup_columns(["r1", "r2", "r3"], experiment="x")
    assert sorted(mine["request_id"]) == sorted(other["request_id"]) == ["r1", "r2"]
    assert ours.forget_user("u1") == theirs.forget_user("u1") == 3
    assert ours.lookup(["r1"])["r1"].user_id is None
    ours.close()
    theirs.close()


def test_todays_sqlite_merchandising_is_copied_once(backend: Backend, tmp_path: Path) -> None:
    state = tmp_path / "old-state"
    old_rules = SqliteRuleStore(state / "rules.sqlite")
    for r in rules():
        old_rules.put(r)
    old_rules.close()
    SqliteExperimentStore(state / "experiments.sqlite").put(
        replace(experiment("x1").to_experiment(), created_at=NOW, status="running",
                started_at=NOW))
    old_log = SqliteRequestLog(state / "requests.sqlite", flush_seconds=3600)
    for n in range(7):
        old_log.record(request_id=f"r{n}", at=NOW - timedelta(days=n), surface="feed",
                       user_id="u1", experiment="x1", variant="A")
    old_log.close()

    s = backend.open()
    assert import_sqlite_merch(state, s) == {"rules": 3, "experiments": 1, "requests": 7}
    assert import_sqlite_merch(state, s) == {"rules": 0, "experiments": 0, "requests": 0}
    assert DocumentRuleStore(s.rules).list() == SqliteRuleStore(state / "rules.sqlite").list()
    assert DocumentExperimentStore(s.experiments).get("x1") == SqliteExperimentStore(
        state / "experiments.sqlite").get("x1")
    assert len(s.requests.days()) == 7 and s.requests.lookup(["r6"])["r6"].variant == "A"
