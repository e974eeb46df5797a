"""Merchandising rules: order, windows, conflicts, stop_processing, every action, store, preview."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from data.catalog import Catalog
from data.models import Event, EventContext, Item
from merch.errors import RuleConflictError, RuleNotFoundError, RuleValidationError
from merch.rules import RuleSpec, apply_rules, plan_query
from merch.rules.engine import query_matches
from merch.rules.model import QueryCondition, Rule
from merch.rules.preview import (
    Ranker,
    Served,
    estimate_impact,
    preview_context,
    sample_contexts,
)
from merch.rules.service import FixedRules, RuleService
from merch.rules.store import SqliteRuleStore
from merch.rules.validate import rule_problems
from ranking.types import RankContext, ScoredItem

NOW = datetime(2025, 3, 1, 12, tzinfo=UTC)


def _item(
    i: str,
    brand: str,
    cat: str,
    price: float = 100,
    tags: str = "",
    days_old: int = 100,
    stock: int = 5,
) -> Item:
    return Item(
        item_id=i,
        title=f"商品 {i}",
        brand=brand,
        category=cat,
        price=price,
        tags=tags,
        stock=stock,
        created_at=NOW - timedelta(days=days_old),
    )


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(
        [
            _item("a", "Acme", "服裝 > 女裝 > 連衣裙", 100, "sale"),
            _item("b", "Bolt", "服裝 > 女裝 > 連衣裙", 300),
            _item("c", "Acme", "服裝 > 男裝", 50, days_old=3),
            _item("d", "Cora", "手機", 2000, "sale"),
            _item("e", "Bolt", "手機", 900),
            _item("x", "Cora", "手機", 10),  # never in the ranked list: pin fodder
            _item("gone", "Cora", "手機", 10, stock=0),
        ]
    )


def ranked(*ids: str) -> list[ScoredItem]:
    return [ScoredItem(item_id=i, score=float(len(ids) - n)) for n, i in enumerate(ids)]


def rule(**kw: object) -> RuleSpec:
    base: dict[str, object] = {"name": "r", "actions": []}
    base.update(kw)
    return RuleSpec.model_validate(base)


def ids(items: list[ScoredItem]) -> list[str]:
    return [s.item_id for s in items]


def feed(**kw: object) -> RankContext:
    return RankContext(surface="feed", now=NOW, **kw)  # type: ignore[arg-type]


def search(q: str, **kw: object) -> RankContext:
    return RankContext(surface="search", query=q, now=NOW, **kw)  # type: ignore[arg-type]


PIN_X1 = {"type": "pin", "pins": [{"item_id": "x", "position": 1}]}


# ---------------------------------------------------------------- actions
def test_pin_inserts_item_at_slot_and_records_reason(catalog: Catalog) -> None:
    r = rule(
        id="p",
        actions=[
            {
                "type": "pin",
                "pins": [{"item_id": "x", "position": 2}, {"item_id": "d", "position": 1}],
            }
        ],
    ).to_rule()
    out = apply_rules(ranked("a", "b", "c", "d"), feed(), [r], catalog)
    assert ids(out.items) == ["d", "x", "a", "b", "c"]
    assert [(x.source, x.rule_id, x.detail) for x in out.items[1].reasons] == [
        ("rule", "p", "pinned at 2")
    ]
    assert out.fired == ("p",)


def test_pin_past_the_end_appends_and_unshowable_pin_is_skipped(catalog: Catalog) -> None:
    r = rule(
        id="p",
        actions=[
            {
                "type": "pin",
                "pins": [{"item_id": "x", "position": 9}, {"item_id": "gone", "position": 1}],
            }
        ],
    ).to_rule()
    out = apply_rules(ranked("a", "b"), feed(), [r], catalog)
    assert ids(out.items) == ["a", "b", "x"]
    assert any("gone not pinned" in e for e in out.trace[0].effects)


def test_boost_and_bury_by_brand_move_items_and_fill_breakdown(catalog: Catalog) -> None:
    boost = rule(
        id="b1", actions=[{"type": "boost", "filter": {"brands": ["cora"]}, "weight": 1}]
    ).to_rule()
    out = apply_rules(ranked("a", "b", "c", "d"), feed(), [boost], catalog)
    assert ids(out.items)[0] == "d"
    assert out.items[0].breakdown["rule:b1"] == pytest.approx(3.0)  # spread of scores 4..1
    bury = rule(
        id="b2", actions=[{"type": "bury", "filter": {"brands": ["Acme"]}, "weight": 1}]
    ).to_rule()
    out = apply_rules(ranked("a", "b", "c", "d"), feed(), [bury], catalog)
    assert ids(out.items) == ["b", "d", "a", "c"]
    assert all(any(x.rule_id == "b2" for x in s.reasons) for s in out.items if s.item_id in "ac")
    assert not out.items[0].reasons  # untouched items carry no rule reason


@pytest.mark.parametrize(
    ("flt", "matched"),
    [
        ({"categories": ["服裝 > 女裝"]}, {"a", "b"}),
        ({"tags": ["sale"]}, {"a", "d"}),
        ({"price_min": 100, "price_max": 900}, {"a", "b", "e"}),
        ({"new_arrival_days": 7}, {"c"}),
        ({"in_stock": True, "brands": ["Bolt"]}, {"b", "e"}),
        ({"item_ids": ["e"]}, {"e"}),
    ],
)
def test_hide_by_each_attribute_filter(catalog: Catalog, flt: dict, matched: set[str]) -> None:
    r = rule(id="h", actions=[{"type": "hide", "filter": flt}]).to_rule()
    out = apply_rules(ranked("a", "b", "c", "d", "e"), feed(), [r], catalog)
    assert set(out.removed) == matched
    assert ids(out.items) == [i for i in "abcde" if i not in matched]


def test_filter_keeps_only_matching_items_but_keeps_earlier_pins(catalog: Catalog) -> None:
    pin = rule(id="a-pin", priority=5, actions=[PIN_X1]).to_rule()
    only = rule(id="f", actions=[{"type": "filter", "filter": {"categories": ["手機"]}}]).to_rule()
    out = apply_rules(ranked("a", "b", "d", "e"), feed(), [only, pin], catalog)
    assert ids(out.items) == ["x", "d", "e"]
    assert set(out.removed) == {"a", "b"}


def test_redirect_and_rewrite_plan_the_query(catalog: Catalog) -> None:
    redirect = rule(
        id="rd",
        condition={"contexts": ["search"], "query": {"text": "phones"}},
        actions=[{"type": "redirect", "category": "手機"}],
    ).to_rule()
    rewrite = rule(
        id="rw",
        condition={"query": {"text": "tee", "match": "contains"}},
        actions=[{"type": "rewrite", "text": "t-shirt"}],
    ).to_rule()
    syn = rule(
        id="sy",
        condition={"query": {"text": "tee", "match": "contains"}},
        actions=[{"type": "rewrite", "text": "top", "mode": "synonyms"}],
    ).to_rule()
    plan = plan_query("Phones", search("Phones"), [redirect, rewrite])
    assert plan.redirect_category == ("手機",) and plan.rule_ids == ("rd",)
    plan = plan_query("red tee", search("red tee"), [redirect, rewrite, syn])
    assert (
        plan.query == "t-shirt" and plan.extra_terms == ("top",) and plan.rule_ids == ("rw", "sy")
    )
    assert not plan_query("teapot", search("teapot"), [rewrite]).rule_ids  # whole words only


def test_service_rewrite_hook_returns_query_rewrite(tmp_path: Path, catalog: Catalog) -> None:
    svc = RuleService(SqliteRuleStore(tmp_path / "r.sqlite"), catalog)
    svc.create(
        rule(
            id="rd",
            condition={"query": {"text": "phones"}},
            actions=[{"type": "redirect", "url": "/sale/phones"}],
        )
    )
    rw = svc.rewrite_query("PHONES", search("PHONES"))
    assert rw.redirect == "/sale/phones" and rw.rule_ids == ("rd",)
    assert svc.rewrite_query("shoes", search("shoes")).redirect is None


# ---------------------------------------------------------------- conditions
def test_query_condition_uses_search_normalization() -> None:
    eq = QueryCondition("連衣裙", "equals")
    assert query_matches(eq, "连衣裙") and query_matches(eq, " 連衣裙 ")
    assert not query_matches(eq, "红色连衣裙")
    contains = QueryCondition("連衣裙", "contains")
    assert query_matches(contains, "红色连衣裙") and query_matches(contains, "紅色 連衣裙")
    en = QueryCondition("Red Dress", "contains")
    assert query_matches(en, "long red summer dress") and not query_matches(en, "red dresser")
    assert query_matches(QueryCondition("ＤＲＥＳＳ", "equals"), "dress")  # full-width folding


def test_conditions_on_context_category_and_user_segment(catalog: Catalog) -> None:
    r = rule(
        id="c",
        condition={
            "contexts": ["feed"],
            "category": "服裝 > 女裝",
            "user_attributes": {"segment": ["vip", "gold"]},
        },
        actions=[PIN_X1],
    ).to_rule()
    items = ranked("a", "b")
    vip = {"segment": "vip"}
    assert apply_rules(
        items, feed(category=("服裝", "女裝", "連衣裙"), user_attributes=vip), [r], catalog
    ).fired
    assert not apply_rules(
        items, feed(category=("服裝", "男裝"), user_attributes=vip), [r], catalog
    ).fired
    assert not apply_rules(
        items, feed(category=("服裝", "女裝"), user_attributes={"segment": "new"}), [r], catalog
    ).fired
    assert not apply_rules(items, feed(category=("服裝", "女裝")), [r], catalog).fired
    out = apply_rules(
        items,
        RankContext(
            surface="search", query="x", category=("服裝", "女裝"), user_attributes=vip, now=NOW
        ),
        [r],
        catalog,
    )
    assert not out.fired and "surface" in out.trace[0].why_not
    # "feed" also covers the recommend and trending surfaces
    assert apply_rules(
        items,
        RankContext(surface="recommend", category=("服裝", "女裝"), user_attributes=vip, now=NOW),
        [r],
        catalog,
    ).fired


def test_active_window_and_enabled_flag(catalog: Catalog) -> None:
    r = rule(
        id="w", start=NOW - timedelta(days=1), end=NOW + timedelta(days=6), actions=[PIN_X1]
    ).to_rule()
    assert apply_rules(ranked("a"), feed(), [r], catalog).fired == ("w",)
    later = RankContext(surface="feed", now=NOW + timedelta(days=6))  # end is exclusive
    assert apply_rules(ranked("a"), later, [r], catalog).fired == ()
    assert "window" in apply_rules(ranked("a"), later, [r], catalog).trace[0].why_not
    off = rule(id="w", enabled=False, actions=[PIN_X1]).to_rule()
    assert apply_rules(ranked("a"), feed(), [off], catalog).fired == ()


# ---------------------------------------------------------------- order
def test_order_is_priority_then_id_and_earlier_rule_wins(catalog: Catalog) -> None:
    hide_x = rule(
        id="b-hide", priority=1, actions=[{"type": "hide", "filter": {"item_ids": ["x"]}}]
    ).to_rule()
    pin_x = rule(id="a-pin", priority=1, actions=[PIN_X1]).to_rule()
    # same priority: "a-pin" runs before "b-hide", so the pin stands and the hide skips it
    out = apply_rules(ranked("a", "b"), feed(), [hide_x, pin_x], catalog)
    assert ids(out.items)[0] == "x" and out.fired == ("a-pin", "b-hide")
    # higher priority first: now the hide runs first and the pin is refused
    hide_first = rule(
        id="b-hide", priority=2, actions=[{"type": "hide", "filter": {"item_ids": ["x"]}}]
    ).to_rule()
    out = apply_rules(ranked("a", "b", "x"), feed(), [pin_x, hide_first], catalog)
    assert "x" not in ids(out.items) and out.fired == ("b-hide", "a-pin")
    assert any("removed by rule b-hide" in e for t in out.trace for e in t.effects)
    # the input order of rules never matters
    assert ids(
        apply_rules(ranked("a", "b", "x"), feed(), [hide_first, pin_x], catalog).items
    ) == ids(out.items)


def test_stop_processing_ends_the_chain(catalog: Catalog) -> None:
    first = rule(
        id="first",
        priority=9,
        stop_processing=True,
        actions=[{"type": "pin", "pins": [{"item_id": "e", "position": 1}]}],
    ).to_rule()
    later = rule(id="later", actions=[PIN_X1]).to_rule()
    out = apply_rules(ranked("a", "b", "e"), feed(), [later, first], catalog)
    assert out.fired == ("first",) and ids(out.items) == ["e", "a", "b"]
    assert [t.why_not for t in out.trace if t.rule_id == "later"] == ["stopped by rule first"]
    # a stopping rule that does not fire does not stop anything
    elsewhere = rule(
        id="first",
        priority=9,
        stop_processing=True,
        condition={"contexts": ["similar"]},
        actions=[{"type": "pin", "pins": [{"item_id": "e", "position": 1}]}],
    ).to_rule()
    out = apply_rules(ranked("a"), feed(), [elsewhere, later], catalog)
    assert out.fired == ("later",)


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
    svc.create(
        rule(
            id="one",
            condition={"query": {"text": "dress"}},
            end=NOW + timedelta(days=30),
            actions=[PIN_X1],
        )
    )
    clash = rule(
        id="two",
        condition={"query": {"text": "DRESS", "match": "contains"}},
        actions=[{"type": "pin", "pins": [{"item_id": "a", "position": 1}]}],
    )
    with pytest.raises(RuleValidationError, match="conflicting pins at position 1: rule 'one'"):
        svc.create(clash)
    # disjoint conditions (another exact query, words the exact query lacks), another window
    # or another rule set are fine
    svc.create(
        rule(
            id="six",
            condition={"query": {"text": "red", "match": "contains"}},
            actions=[{"type": "pin", "pins": [{"item_id": "a", "position": 1}]}],
        )
    )
    svc.create(
        rule(
            id="three",
            condition={"query": {"text": "shoes"}},
            actions=[{"type": "pin", "pins": [{"item_id": "a", "position": 1}]}],
        )
    )
    svc.create(
        rule(
            id="four",
            rule_set="holiday",
            condition={"query": {"text": "dress"}},
            actions=[{"type": "pin", "pins": [{"item_id": "a", "position": 1}]}],
        )
    )
    svc.create(
        rule(
            id="five",
            condition={"query": {"text": "dress"}},
            start=NOW + timedelta(days=400),
            actions=[{"type": "pin", "pins": [{"item_id": "a", "position": 1}]}],
        )
    )
    assert [r.rule_id for r in svc.store.list("default")] == ["five", "one", "six", "three"]
    with pytest.raises(RuleValidationError, match="rule 'six'"):  # "red dress" has both words
        svc.create(
            rule(
                id="seven",
                condition={"query": {"text": "red dress"}},
                actions=[{"type": "pin", "pins": [{"item_id": "b", "position": 1}]}],
            )
        )


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


# ---------------------------------------------------------------- preview
def _ranker(catalog: Catalog) -> Ranker:
    """A stand-in for serving: plan the query, fetch a fixed list, apply the rules."""

    def rank(ctx: RankContext, rules: Sequence[Rule]) -> Served:
        hook = FixedRules(list(rules), catalog)
        plan = hook.plan(ctx.query, ctx) if ctx.surface == "search" and ctx.query else None
        if ctx.surface == "search":
            text = " ".join((plan.query, *plan.extra_terms)) if plan else ""
            items = ranked("d", "e") if "phone" in text else ranked("a", "b", "c")
        else:
            items = ranked("a", "b", "c", "d", "e")
        out = hook.outcome(items, ctx)
        return Served(out.items, plan, out.trace)

    return rank


def test_preview_shows_before_after_and_moves(catalog: Catalog) -> None:
    draft = rule(
        id="draft",
        condition={"contexts": ["feed"]},
        actions=[{"type": "bury", "filter": {"brands": ["Acme"]}, "weight": 1}],
    ).to_rule()
    existing = rule(id="pin", actions=[PIN_X1]).to_rule()
    p = preview_context(draft, [existing], feed(), _ranker(catalog), catalog, k=4)
    assert ids(p.before) == ["x", "a", "b", "c"]
    assert ids(p.after) == ["x", "b", "d", "e"]
    kinds = {m.item_id: m.kind for m in p.moves}
    assert kinds == {
        "x": "same",
        "b": "up",
        "d": "entered",
        "e": "entered",
        "a": "left",
        "c": "left",
    }
    assert p.changed and p.draft_fired and p.draft_trace is not None


def test_preview_of_a_rewrite_searches_the_new_text(catalog: Catalog) -> None:
    draft = rule(
        id="rw",
        condition={"query": {"text": "手機"}},
        actions=[{"type": "rewrite", "text": "phone"}],
    ).to_rule()
    p = preview_context(draft, [], search("手機"), _ranker(catalog), catalog)
    assert ids(p.before) == ["a", "b", "c"] and ids(p.after) == ["d", "e"]
    assert p.plan_after is not None and p.plan_after.query == "phone"


def test_impact_over_sampled_searches(catalog: Catalog) -> None:
    events = [
        Event(
            event_id=f"s{n}",
            user_id=f"u{n % 3}",
            type="search",
            timestamp=NOW - timedelta(minutes=n),
            context=EventContext(query=q),
        )
        for n, q in enumerate(["連衣裙"] * 5 + ["连衣裙 红色"] * 3 + ["shoes"] * 2)
    ]
    samples = sample_contexts(events, "search", n=10, now=NOW)
    assert [(s.label, s.weight) for s in samples] == [
        ("連衣裙", 5.0),
        ("连衣裙 红色", 3.0),
        ("shoes", 2.0),
    ]
    draft = rule(
        id="pin-x",
        condition={"contexts": ["search"], "query": {"text": "连衣裙", "match": "contains"}},
        actions=[PIN_X1],
    ).to_rule()
    est = estimate_impact(draft, [], samples, _ranker(catalog), catalog, k=3)
    assert (est.sampled, est.fired, est.changed) == (3, 2, 2)
    assert est.traffic_share == pytest.approx(0.8)
    by_id = {i.item_id: i for i in est.items}
    assert by_id["x"].entered == 2 and by_id["c"].left == 2 and by_id["a"].down == 2
    assert "would change 2 of 3" in est.summary()
    assert len(est.examples) == 2
