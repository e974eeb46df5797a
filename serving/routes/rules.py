"""``/v1/rules``: merchandising rules CRUD, validation and preview (admin key).

Rules are applied in a fixed order (priority high→low, then id) — see ``merch.rules.engine``.
``POST /v1/rules/preview`` shows what a draft would do before it is saved: before/after for one
query, user or anchor item, and an impact estimate over recent traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from data.models import CATEGORY_SEPARATOR
from merch.request_log import ServedRequest
from merch.rules.engine import QueryPlan
from merch.rules.model import CONTEXT_SURFACES, RULE_CONTEXTS, Rule, RuleContext
from merch.rules.preview import (
    ImpactEstimate,
    ListPreview,
    SampleContext,
    estimate_impact,
    preview_context,
    sample_contexts,
)
from merch.rules.spec import RuleSpec
from merch.rules.validate import rule_problems, rule_warnings
from ranking.types import RankContext, ScoredItem
from serving.deps import AdminDep, ServicesDep
from serving.errors import DocumentedRoute, error_responses
from serving.merch import merch, preview_ranker, recent_events
from serving.state import Services

router = APIRouter(
    prefix="/v1/rules", tags=["rules"], dependencies=[AdminDep], route_class=DocumentedRoute
)


class RuleOut(RuleSpec):
    """A stored rule: its spec plus whether it is live now."""

    active_now: bool = False
    warnings: list[str] = Field(default_factory=list)


class RuleListOut(BaseModel):
    rules: list[RuleOut]
    rule_sets: list[str]
    order: str = "priority (highest first), then id"


def rule_out(rule: Rule, warnings: list[str] | None = None) -> RuleOut:
    spec = RuleSpec.of(rule)
    return RuleOut(
        **spec.model_dump(), active_now=rule.is_active(datetime.now(UTC)), warnings=warnings or []
    )


@router.get("", response_model=RuleListOut, summary="List rules in the order they apply")
def list_rules(
    services: ServicesDep,
    rule_set: Annotated[str | None, Query(max_length=64, description="Only this rule set.")] = None,
) -> RuleListOut:
    m = merch(services)
    rules = m.rules.store.list(rule_set)
    return RuleListOut(rules=[rule_out(r) for r in rules], rule_sets=m.rules.rule_sets())


@router.post(
    "",
    response_model=RuleOut,
    status_code=201,
    summary="Create a rule",
    responses=error_responses(409),  # the id is taken
    description="Rejected with 400 and every reason when it cannot be applied (unknown item, "
    "window ending before it starts, pins conflicting with another rule at one position).",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "id": "pin-dress",
                        "name": "Pin our dress for 連衣裙",
                        "priority": 10,
                        "condition": {
                            "contexts": ["search"],
                            "query": {"text": "連衣裙", "match": "contains"},
                        },
                        "actions": [
                            {"type": "pin", "pins": [{"item_id": "i00042", "position": 1}]}
                        ],
                    }
                }
            }
        }
    },
)
def create_rule(body: RuleSpec, services: ServicesDep, response: Response) -> RuleOut:
    rule, warnings = merch(services).rules.create(body)
    response.headers["Location"] = f"/v1/rules/{rule.rule_id}"
    return rule_out(rule, warnings)


@router.get("/{rule_id}", response_model=RuleOut, summary="Get a rule")
def get_rule(rule_id: str, services: ServicesDep) -> RuleOut:
    return rule_out(merch(services).rules.get(rule_id))


@router.put("/{rule_id}", response_model=RuleOut, summary="Replace a rule",
            responses=error_responses(409))
def put_rule(rule_id: str, body: RuleSpec, services: ServicesDep) -> RuleOut:
    rule, warnings = merch(services).rules.update(rule_id, body)
    return rule_out(rule, warnings)


@router.delete("/{rule_id}", status_code=204, summary="Delete a rule")
def delete_rule(rule_id: str, services: ServicesDep) -> Response:
    merch(services).rules.delete(rule_id)
    return Response(status_code=204)


# ---------------------------------------------------------------------------- preview
class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: RuleSpec
    surface: RuleContext | None = Field(
        default=None,
        description=(
            "Defaults to search when the rule has a query condition, else its first context."
        ),
    )
    query: str | None = Field(default=None, max_length=500)
    user_id: str | None = Field(default=None, max_length=128)
    item_id: str | None = Field(
        default=None, max_length=128, description="Anchor for similar / bought_together."
    )
    category: str | None = Field(default=None, max_length=500, description="'A > B'")
    k: int = Field(default=10, ge=1, le=50)
    sample_size: int = Field(
        default=30, ge=0, le=200, description="Requests to sample; 0 skips the estimate."
    )
    sample_last: int = Field(
        default=5000, ge=10, le=100_000, description="Recent events to sample from."
    )


class PreviewItemOut(BaseModel):
    position: int
    item_id: str
    title: str
    brand: str | None
    price: float | None
    score: float
    reasons: list[dict[str, str]]
    rule_ids: list[str]


class MoveOut(BaseModel):
    item_id: str
    title: str
    before: int | None
    after: int | None
    kind: str


class ListPreviewOut(BaseModel):
    surface: str
    query: str | None
    user_id: str | None
    item_id: str | None
    changed: bool
    draft_fired: bool
    draft_effects: list[str]
    why_not: str
    query_before: str | None
    query_after: str | None
    redirect_after: str | None
    before: list[PreviewItemOut]
    after: list[PreviewItemOut]
    moves: list[MoveOut]


class ItemImpactOut(BaseModel):
    item_id: str
    title: str
    entered: int
    left: int
    up: int
    down: int
    mean_shift: float


class ImpactOut(BaseModel):
    surface: str
    sampled: int
    fired: int
    changed: int
    changed_share: float
    traffic_share: float
    redirected: int
    mean_displacement: float
    summary: str
    items: list[ItemImpactOut]
    examples: list[ListPreviewOut]


class PreviewOut(BaseModel):
    valid: bool
    problems: list[str]
    warnings: list[str]
    preview: ListPreviewOut
    impact: ImpactOut | None


def _items(items: list[ScoredItem], services: Services) -> list[PreviewItemOut]:
    out = []
    for n, s in enumerate(items, 1):
        item = services.catalog.get(s.item_id)
        out.append(
            PreviewItemOut(
                position=n,
                item_id=s.item_id,
                title=item.title if item else s.item_id,
                brand=item.brand if item else None,
                price=item.price if item else None,
                score=round(s.score, 6),
                reasons=[r.as_dict() for r in s.reasons],
                rule_ids=[r.rule_id for r in s.reasons if r.rule_id],
            )
        )
    return out


def _plan_text(p: QueryPlan | None) -> str | None:
    if p is None:
        return None
    return " ".join((p.query, *p.extra_terms))


def _list_out(p: ListPreview, services: Services) -> ListPreviewOut:
    redirect = None
    if p.plan_after is not None and p.plan_after.redirected:
        redirect = p.plan_after.redirect_url or CATEGORY_SEPARATOR.join(
            p.plan_after.redirect_category or ()
        )
    return ListPreviewOut(
        surface=p.ctx.surface,
        query=p.ctx.query,
        user_id=p.ctx.user_id,
        item_id=p.ctx.item_id,
        changed=p.changed,
        draft_fired=p.draft_fired,
        draft_effects=list(p.draft_trace.effects) if p.draft_trace else [],
        why_not=p.draft_trace.why_not if p.draft_trace and not p.draft_trace.fired else "",
        query_before=_plan_text(p.plan_before),
        query_after=_plan_text(p.plan_after),
        redirect_after=redirect,
        before=_items(p.before, services),
        after=_items(p.after, services),
        moves=[
            MoveOut(item_id=m.item_id, title=m.title, before=m.before, after=m.after, kind=m.kind)
            for m in p.moves
        ],
    )


def _impact_out(e: ImpactEstimate, services: Services) -> ImpactOut:
    return ImpactOut(
        surface=e.surface,
        sampled=e.sampled,
        fired=e.fired,
        changed=e.changed,
        changed_share=round(e.changed_share, 4),
        traffic_share=round(e.traffic_share, 4),
        redirected=e.redirected,
        mean_displacement=round(e.mean_displacement, 3),
        summary=e.summary(),
        items=[
            ItemImpactOut(
                item_id=i.item_id,
                title=i.title,
                entered=i.entered,
                left=i.left,
                up=i.up,
                down=i.down,
                mean_shift=round(i.mean_shift, 3),
            )
            for i in e.items
        ],
        examples=[_list_out(x, services) for x in e.examples],
    )


def default_surface(rule: Rule) -> RuleContext:
    if rule.condition.query is not None and (
        not rule.condition.contexts or "search" in rule.condition.contexts
    ):
        return "search"
    return rule.condition.contexts[0] if rule.condition.contexts else "feed"


def served_samples(
    served: list[ServedRequest],
    surface: RuleContext,
    n: int,
    now: datetime,
    user_attributes: Callable[[str], Mapping[str, str | int | float | bool]],
) -> list[SampleContext]:
    """Sample contexts from the served-request log (most recent first)."""
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


def run_preview(services: Services, body: PreviewIn, rule_id: str | None = None) -> PreviewOut:
    """Preview a draft (also used by the console)."""
    m = merch(services)
    draft = body.rule.to_rule(rule_id or body.rule.id or "draft")
    stored = m.rules.store.list(draft.rule_set)
    problems = rule_problems(draft, services.catalog, stored)
    warnings = rule_warnings(draft, services.catalog)
    surface: RuleContext = body.surface or default_surface(draft)
    now = datetime.now(UTC)
    profile = services.profiles.get(body.user_id) if body.user_id else None
    attrs = dict(profile.attributes) if profile is not None else {}
    query = body.query
    if surface == "search" and not query and draft.condition.query is not None:
        query = draft.condition.query.text
    cat = tuple(p.strip() for p in body.category.split(">") if p.strip()) if body.category else None
    ctx = RankContext(
        surface=surface,
        user_id=body.user_id,
        user_attributes=attrs,
        query=query if surface == "search" else None,
        category=cat,
        item_id=body.item_id,
        now=now,
    )
    ranker = preview_ranker(services, k=body.k)
    every = m.rules.all_rules()  # all rule sets: serving picks the request's set itself
    one = preview_context(draft, every, ctx, ranker, services.catalog, k=body.k)
    impact = None
    if body.sample_size > 0:

        def user_attributes(uid: str) -> dict[str, str | int | float | bool]:
            return dict(services.profiles.get(uid).attributes)

        samples = sample_contexts(
            recent_events(services, 4 * body.sample_last),
            surface,
            n=body.sample_size,
            last=body.sample_last,
            now=now,
            user_attributes=user_attributes,
        )
        if not samples:  # no events yet: sample the requests the API served instead
            samples = served_samples(
                m.requests.recent(None, body.sample_last),
                surface,
                body.sample_size,
                now,
                user_attributes,
            )
        impact = _impact_out(
            estimate_impact(draft, every, samples, ranker, services.catalog, k=body.k), services
        )
    return PreviewOut(
        valid=not problems,
        problems=problems,
        warnings=warnings,
        preview=_list_out(one, services),
        impact=impact,
    )


@router.post(
    "/preview",
    response_model=PreviewOut,
    summary="Preview a draft rule: before/after and impact over recent traffic",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "example": {
                        "rule": {
                            "name": "Bury ACME in the feed",
                            "condition": {"contexts": ["feed"]},
                            "actions": [
                                {"type": "bury", "filter": {"brands": ["ACME"]}, "weight": 1}
                            ],
                        },
                        "user_id": "u00001",
                        "k": 10,
                        "sample_size": 30,
                    }
                }
            }
        }
    },
)
def preview(body: PreviewIn, services: ServicesDep) -> PreviewOut:
    return run_preview(services, body)


CONTEXTS: tuple[Literal["feed", "search", "similar", "bought_together"], ...] = RULE_CONTEXTS
