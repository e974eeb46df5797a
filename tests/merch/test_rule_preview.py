"""Rule preview: before/after of one request, samples of recent traffic, impact."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from data.catalog import Catalog
from data.models import Event, EventContext
from merch.request_log import ServedRequest
from merch.rules.model import Rule
from merch.rules.preview import (
    Ranker,
    Served,
    default_surface,
    estimate_impact,
    preview_context,
    sample_contexts,
    served_samples,
)
from merch.rules.service import FixedRules
from ranking.types import RankContext
from tests.merch.rules_support import NOW, PIN_X1, feed, ids, ranked, rule, search


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


def test_without_events_the_served_requests_are_sampled_once_per_context() -> None:
    def served(rid: str, surface: str, user: str | None = None) -> ServedRequest:
        return ServedRequest(request_id=rid, at=NOW, surface=surface, user_id=user)

    log = [served("r1", "feed", "u1"), served("r2", "search"), served("r3", "feed", "u1"),
           served("r4", "feed", "u2"), served("r5", "feed", None), served("r6", "feed", "u3")]
    samples = served_samples(log, "feed", 3, NOW, lambda uid: {"segment": uid.upper()})
    assert [s.label for s in samples] == ["u1", "u2", "r5"]  # r3 repeats r1; stops at 3
    assert samples[0].ctx.user_attributes == {"segment": "U1"}
    assert samples[2].ctx.user_attributes == {}  # an anonymous request has no attributes


def test_a_rule_is_previewed_where_it_acts_by_default() -> None:
    def surface(**condition: object) -> str:
        return default_surface(rule(condition=condition, actions=[PIN_X1]).to_rule())

    query = {"text": "dress"}
    assert surface(query=query) == "search"
    assert surface(query=query, contexts=["feed"]) == "feed"
    assert surface(query=query, contexts=["feed", "search"]) == "search"
    assert surface(contexts=["similar"]) == "similar"
    assert surface() == "feed"
