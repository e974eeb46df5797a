"""See what a draft rule would do before it goes live.

* :func:`preview_context` — before/after for one request (a query, a user, an anchor item):
  both lists, each item's move, the query rewrite or redirect, and what the draft did.
* :func:`estimate_impact` — the same over a sample of real traffic (the most frequent recent
  searches, recently active users, recently viewed items): how many requests it would change
  (also weighted by how often each query is searched), how far items moved, which items
  enter or leave the top k, and a few example diffs.

"Before" is what serving returns with the stored rules (with the old version of the rule
when the draft edits one); "after" is what it would return with the draft saved. Both come
from a :data:`Ranker` that runs serving's own code path — the same pipeline stages in the same
order (rules before diversity on feeds, after personalization on search), the same rule-set
choice by experiment variant — with the given rules in force, so a preview's "after" list is
exactly what the live API returns once the draft is saved.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from data.catalog import Catalog
from data.models import Event
from merch.request_log import ServedRequest
from merch.rules.engine import QueryPlan, RuleTrace, rule_fires
from merch.rules.model import CONTEXT_SURFACES, Rule, RuleContext
from ranking.types import RankContext, ScoredItem, Surface


@dataclass(frozen=True, slots=True)
class Served:
    """What serving returns for one request with a given list of rules in force."""

    items: list[ScoredItem]
    plan: QueryPlan | None = None
    """The query plan (search only)."""
    trace: tuple[RuleTrace, ...] = ()
    """What each rule of the request's rule set did to the list."""


Ranker = Callable[[RankContext, Sequence[Rule]], Served]
"""(context, every rule as stored — all rule sets) → the list serving would return."""

UserAttributes = Callable[[str], Mapping[str, str | int | float | bool]]


@dataclass(frozen=True, slots=True)
class Move:
    item_id: str
    title: str
    before: int | None
    """1-based position in the top k before, None when absent."""
    after: int | None

    @property
    def kind(self) -> str:
        if self.before is None:
            return "entered"
        if self.after is None:
            return "left"
        if self.after < self.before:
            return "up"
        if self.after > self.before:
            return "down"
        return "same"


@dataclass(frozen=True, slots=True)
class ListPreview:
    ctx: RankContext
    before: list[ScoredItem]
    after: list[ScoredItem]
    moves: tuple[Move, ...]
    plan_before: QueryPlan | None
    plan_after: QueryPlan | None
    draft_fired: bool
    draft_trace: RuleTrace | None

    @property
    def changed(self) -> bool:
        if (self.plan_before and self.plan_before.redirected) != (
            self.plan_after and self.plan_after.redirected
        ):
            return True
        if self.plan_before and self.plan_after and self.plan_before.query != self.plan_after.query:
            return True
        return [s.item_id for s in self.before] != [s.item_id for s in self.after]


def _title(catalog: Catalog, item_id: str) -> str:
    item = catalog.get(item_id)
    return item.title if item is not None else item_id


def _moves(before: list[ScoredItem], after: list[ScoredItem], catalog: Catalog) -> tuple[Move, ...]:
    pb = {s.item_id: n for n, s in enumerate(before, 1)}
    pa = {s.item_id: n for n, s in enumerate(after, 1)}
    ids = list(pa) + [i for i in pb if i not in pa]
    return tuple(Move(i, _title(catalog, i), pb.get(i), pa.get(i)) for i in ids)


def _versions(draft: Rule, rules: Sequence[Rule]) -> tuple[list[Rule], list[Rule]]:
    """The rules as stored (before) and with the draft saved (after)."""
    others = [r for r in rules if r.rule_id != draft.rule_id]
    old = [r for r in rules if r.rule_id == draft.rule_id]
    return others + old, others + [draft]


def preview_context(
    draft: Rule,
    rules: Sequence[Rule],
    ctx: RankContext,
    ranker: Ranker,
    catalog: Catalog,
    *,
    k: int = 10,
) -> ListPreview:
    """Before/after of one request. ``rules`` are every stored rule (all rule sets)."""
    before_rules, after_rules = _versions(draft, rules)
    before = ranker(ctx, before_rules)
    after = ranker(ctx, after_rules)
    fired = rule_fires(draft, ctx)[0]
    draft_trace = next((t for t in after.trace if t.rule_id == draft.rule_id), None)
    plan_a = after.plan
    if draft_trace is None and plan_a is not None and draft.rule_id in plan_a.rule_ids:
        draft_trace = RuleTrace(draft.rule_id, draft.name, True, "", ("changed the query",))
    return ListPreview(
        ctx=ctx,
        before=before.items[:k],
        after=after.items[:k],
        moves=_moves(before.items[:k], after.items[:k], catalog),
        plan_before=before.plan,
        plan_after=plan_a,
        draft_fired=fired,
        draft_trace=draft_trace,
    )


# ---------------------------------------------------------------------------- samples
@dataclass(frozen=True, slots=True)
class SampleContext:
    ctx: RankContext
    weight: float = 1.0
    """How many real requests this context stands for (a query's search count)."""
    label: str = ""


def sample_contexts(
    events: Iterable[Event],
    surface: Surface,
    *,
    n: int = 50,
    last: int = 5000,
    now: datetime | None = None,
    user_attributes: UserAttributes | None = None,
) -> list[SampleContext]:
    """Contexts from the most recent traffic in the event log.

    ``search``: the ``n`` most frequent queries among the last ``last`` search events (weight =
    count). ``similar`` / ``bought_together``: the ``n`` most viewed items recently (anchors).
    Other surfaces: the ``n`` most recently active users.
    """
    now = now or datetime.now(UTC)
    recent: list[Event] = []
    for e in events:
        recent.append(e)
        if len(recent) > 4 * last:
            recent = recent[-last:]
    recent = sorted(recent[-last * 4 :], key=lambda e: e.timestamp)
    attrs = user_attributes or (lambda _uid: {})
    out: list[SampleContext] = []
    if surface == "search":
        searches = [e for e in recent if e.type == "search" and e.context.query][-last:]
        counts = Counter(e.context.query.strip() for e in searches if e.context.query)
        for q, c in counts.most_common(n):
            out.append(SampleContext(RankContext(surface="search", query=q, now=now), float(c), q))
    elif surface in ("similar", "bought_together"):
        views = Counter(
            e.item_id for e in recent[-last:] if e.item_id and e.type in ("view", "click")
        )
        for item_id, c in views.most_common(n):
            out.append(
                SampleContext(
                    RankContext(surface=surface, item_id=item_id, now=now), float(c), item_id
                )
            )
    else:
        seen: dict[str, None] = {}
        for e in reversed(recent):
            if e.user_id not in seen:
                seen[e.user_id] = None
                if len(seen) >= n:
                    break
        for uid in seen:
            ctx = RankContext(
                surface=surface, user_id=uid, user_attributes=dict(attrs(uid)), now=now
            )
            out.append(SampleContext(ctx, 1.0, uid))
    return out


def served_samples(
    served: Iterable[ServedRequest],
    surface: RuleContext,
    n: int,
    now: datetime,
    user_attributes: UserAttributes,
) -> list[SampleContext]:
    """Contexts from the served-request log (most recent first), one per distinct (user,
    query, anchor item): the sample when the event log holds no traffic yet."""
    surfaces = CONTEXT_SURFACES[surface]
    out: list[SampleContext] = []
    seen: set[tuple[str | None, str | None, str | None]] = set()
    for s in served:
        if s.surface not in surfaces:
            continue
        key = (s.user_id, s.query, s.item_id)
        if key in seen:
            continue
        seen.add(key)
        ctx = RankContext(
            surface=surface,
            user_id=s.user_id,
            query=s.query,
            item_id=s.item_id,
            now=now,
            user_attributes=dict(user_attributes(s.user_id)) if s.user_id else {},
        )
        out.append(SampleContext(ctx, 1.0, s.query or s.user_id or s.item_id or s.request_id))
        if len(out) >= n:
            break
    return out


def default_surface(rule: Rule) -> RuleContext:
    """Where to preview a rule when the merchandiser names no surface: search when it has a
    query condition that search honours, else its first context (the feed when it has none)."""
    if rule.condition.query is not None and (
        not rule.condition.contexts or "search" in rule.condition.contexts
    ):
        return "search"
    return rule.condition.contexts[0] if rule.condition.contexts else "feed"


# ---------------------------------------------------------------------------- impact
@dataclass(frozen=True, slots=True)
class ItemImpact:
    item_id: str
    title: str
    entered: int
    """Lists whose top k it entered."""
    left: int
    up: int
    down: int
    mean_shift: float
    """Mean position change where it was in both lists (negative = moved up)."""


@dataclass(frozen=True, slots=True)
class ImpactEstimate:
    surface: str
    sampled: int
    fired: int
    """Sampled requests where the draft's condition holds."""
    changed: int
    """Sampled requests whose top k (or query/redirect) would change."""
    weight_total: float
    weight_changed: float
    redirected: int
    mean_displacement: float
    """Mean |position change| of items present before and after, over changed lists."""
    items: tuple[ItemImpact, ...]
    examples: tuple[ListPreview, ...]
    k: int

    @property
    def changed_share(self) -> float:
        return self.changed / self.sampled if self.sampled else 0.0

    @property
    def traffic_share(self) -> float:
        return self.weight_changed / self.weight_total if self.weight_total else 0.0

    def summary(self) -> str:
        if not self.sampled:
            return f"no recent {self.surface} traffic to sample; impact unknown"
        return (
            f"would change {self.changed} of {self.sampled} sampled {self.surface} requests "
            f"({self.changed_share:.0%}; {self.traffic_share:.0%} of their traffic), "
            f"fires on {self.fired}"
        )


def estimate_impact(
    draft: Rule,
    rules: Sequence[Rule],
    samples: Sequence[SampleContext],
    ranker: Ranker,
    catalog: Catalog,
    *,
    k: int = 10,
    examples: int = 3,
    top_items: int = 10,
) -> ImpactEstimate:
    """Run :func:`preview_context` on each sample where the draft (or its old version) fires."""
    old = next((r for r in rules if r.rule_id == draft.rule_id), None)
    fired = changed = redirected = 0
    w_total = w_changed = 0.0
    shifts: list[int] = []
    per_item: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    per_item_shift: dict[str, list[int]] = defaultdict(list)
    shown: list[ListPreview] = []
    surface = samples[0].ctx.surface if samples else "feed"
    for s in samples:
        w_total += s.weight
        draft_fires = rule_fires(draft, s.ctx)[0]
        fired += int(draft_fires)
        if not draft_fires and not (old is not None and rule_fires(old, s.ctx)[0]):
            continue
        p = preview_context(draft, rules, s.ctx, ranker, catalog, k=k)
        if not p.changed:
            continue
        changed += 1
        w_changed += s.weight
        redirected += int(bool(p.plan_after and p.plan_after.redirected))
        for m in p.moves:
            counts = per_item[m.item_id]
            kind = m.kind
            if kind == "entered":
                counts[0] += 1
            elif kind == "left":
                counts[1] += 1
            elif kind == "up":
                counts[2] += 1
            elif kind == "down":
                counts[3] += 1
            if m.before is not None and m.after is not None:
                shifts.append(abs(m.after - m.before))
                if m.after != m.before:
                    per_item_shift[m.item_id].append(m.after - m.before)
        if len(shown) < examples:
            shown.append(p)
    impacts = [
        ItemImpact(
            item_id=i,
            title=_title(catalog, i),
            entered=c[0],
            left=c[1],
            up=c[2],
            down=c[3],
            mean_shift=(sum(per_item_shift[i]) / len(per_item_shift[i]))
            if per_item_shift[i]
            else 0.0,
        )
        for i, c in per_item.items()
        if any(c)
    ]
    impacts.sort(
        key=lambda x: (-(x.entered + x.left + x.up + x.down), -abs(x.mean_shift), x.item_id)
    )
    return ImpactEstimate(
        surface=surface,
        sampled=len(samples),
        fired=fired,
        changed=changed,
        weight_total=w_total,
        weight_changed=w_changed,
        redirected=redirected,
        mean_displacement=(sum(shifts) / len(shifts)) if shifts else 0.0,
        items=tuple(impacts[:top_items]),
        examples=tuple(shown),
        k=k,
    )


def with_context(ctx: RankContext, **changes: object) -> RankContext:
    return dataclasses.replace(ctx, **changes)  # type: ignore[arg-type]
