"""Rule validation (reasons, conflicting pins), the rule store and the rule service."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from data.catalog import Catalog
from merch.errors import RuleConflictError, RuleNotFoundError, RuleValidationError
from merch.rules import RuleSpec
from merch.rules.service import RuleService
from merch.rules.store import SqliteRuleStore
from merch.rules.validate import rule_problems
from tests.merch.rules_support import NOW, PIN_A1, PIN_X1, feed, ids, ranked, rule


# ---------------------------------------------------------------- validation
def test_validation_rejects_with_reasons(catalog: Catalog) -> None:
    bad = rule(
        id="bad",
        start=NOW,
        end=NOW - timedelta(hours=1),
        actions=[
            {
                "type": "pin",
                "pins": [{"item_id": "nope", "position": 1}, {"item_id": "a", "position": 1}],
            },
            {"type": "hide", "filter": {}},
        ],
    ).to_rule()
    problems = rule_problems(bad, catalog)
    assert any("ends" in p and "before" in p for p in problems)
    assert any("unknown item 'nope'" in p for p in problems)
    assert any("conflicting pins at position 1" in p for p in problems)
    assert any("would match every item" in p for p in problems)
    rw = rule(
        id="rw", condition={"contexts": ["feed"]}, actions=[{"type": "rewrite", "text": "x"}]
    ).to_rule()
    assert any("query condition" in p for p in rule_problems(rw, catalog))
    with pytest.raises(ValidationError, match="position"):
        rule(actions=[{"type": "pin", "pins": [{"item_id": "a", "position": 0}]}])
    with pytest.raises(ValidationError, match="actions"):
        RuleSpec.model_validate({"name": "n", "actions": [{"type": "explode"}]})


def test_conflicting_pins_across_overlapping_rules(tmp_path: Path, catalog: Catalog) -> None:
    svc = RuleService(SqliteRuleStore(tmp_path / "r.sqlite"), catalog)
    dress = {"query": {"text": "dress"}}
    svc.create(rule(id="one", condition=dress, end=NOW + timedelta(days=30), actions=[PIN_X1]))
    clash = rule(
        id="two", condition={"query": {"text": "DRESS", "match": "contains"}}, actions=[PIN_A1]
    )
    with pytest.raises(RuleValidationError, match="conflicting pins at position 1: rule 'one'"):
        svc.create(clash)
    # disjoint conditions (another exact query, words the exact query lacks), another window
    # or another rule set are fine
    for fine in (
        {"id": "six", "condition": {"query": {"text": "red", "match": "contains"}}},
        {"id": "three", "condition": {"query": {"text": "shoes"}}},
        {"id": "four", "rule_set": "holiday", "condition": dress},
        {"id": "five", "condition": dress, "start": NOW + timedelta(days=400)},
    ):
        svc.create(rule(**fine, actions=[PIN_A1]))
    assert [r.rule_id for r in svc.store.list("default")] == ["five", "one", "six", "three"]
    pin_b = {"type": "pin", "pins": [{"item_id": "b", "position": 1}]}
    with pytest.raises(RuleValidationError, match="rule 'six'"):  # "red dress" has both words
        svc.create(rule(id="seven", condition={"query": {"text": "red dress"}}, actions=[pin_b]))


# ---------------------------------------------------------------- store + service
def test_store_round_trip_revision_and_errors(tmp_path: Path, catalog: Catalog) -> None:
    store = SqliteRuleStore(tmp_path / "rules.sqlite")
    spec = rule(
        id="keep",
        name="保留 連衣裙",
        priority=3,
        start=NOW,
        end=NOW + timedelta(days=7),
        condition={
            "contexts": ["search"],
            "query": {"text": "連衣裙", "match": "contains"},
            "user_attributes": {"segment": "vip"},
        },
        actions=[
            PIN_X1,
            {"type": "bury", "filter": {"brands": ["Acme"], "price_max": 99}, "weight": 0.3},
        ],
    )
    r = spec.to_rule()
    rev = store.revision()
    store.put(r, create=True)
    assert store.revision() == rev + 1
    again = SqliteRuleStore(tmp_path / "rules.sqlite").get("keep")  # another handle: durable
    assert again == r
    with pytest.raises(RuleConflictError):
        store.put(r, create=True)
    store.delete("keep")
    with pytest.raises(RuleNotFoundError):
        store.get("keep")
    with pytest.raises(RuleNotFoundError):
        store.delete("keep")


def test_service_applies_rule_set_chosen_for_the_request(tmp_path: Path, catalog: Catalog) -> None:
    svc = RuleService(
        SqliteRuleStore(tmp_path / "r.sqlite"),
        catalog,
        rule_set_for=lambda ctx: "holiday" if ctx.variant == "B" else None,
    )
    svc.create(rule(id="d", actions=[PIN_X1]))
    svc.create(
        rule(
            id="h",
            rule_set="holiday",
            actions=[{"type": "pin", "pins": [{"item_id": "e", "position": 1}]}],
        )
    )
    assert ids(svc.apply_rules(ranked("a", "b"), feed()))[0] == "x"
    assert ids(svc.apply_rules(ranked("a", "b"), feed(experiment="exp", variant="B")))[0] == "e"
    svc.set_enabled("d", False)
    assert ids(svc.apply_rules(ranked("a", "b"), feed())) == ["a", "b"]


def test_a_rule_stored_before_a_new_check_still_reads(tmp_path: Path) -> None:
    # NUL in free text is refused on input since rules were first stored: a rule written
    # before that (held as a Rule, stored through RuleSpec.of) still lists, reads and saves
    store = SqliteRuleStore(tmp_path / "rules.sqlite")
    old = dataclasses.replace(rule(id="old", actions=[PIN_X1]).to_rule(), name="old\x00name")
    store.put(old, create=True)
    assert store.get("old") == old
    assert [r.name for r in SqliteRuleStore(tmp_path / "rules.sqlite").list()] == ["old\x00name"]
    with pytest.raises(ValidationError, match="NUL"):  # what comes in is still checked
        RuleSpec.model_validate({**RuleSpec.of(old).model_dump(), "name": "new\x00name"})
