"""Merchandising rules: every action, conditions, order and stop_processing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from data.catalog import Catalog
from merch.rules import apply_rules, plan_query
from merch.rules.engine import query_matches
from merch.rules.model import QueryCondition
from merch.rules.service import RuleService
from merch.rules.store import SqliteRuleStore
from ranking.types import RankContext
from tests.merch.rules_support import NOW, PIN_X1, feed, ids, ranked, rule, search


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
