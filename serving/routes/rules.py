"""``/v1/rules``: merchandising rules CRUD, validation and preview (admin key).

Rules are applied in a fixed order (priority high→low, then id) — see ``merch.rules.engine``.
``POST /v1/rules/preview`` shows what a draft would do before it is saved: before/after for one
query, user or anchor item, and an impact estimate over recent traffic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from data.catalog import Catalog
from data.models import CATEGORY_SEPARATOR
from merch.rules.engine import QueryPlan
from merch.rules.model import RULE_CONTEXTS, Rule, RuleContext
from merch.rules.preview import ImpactEstimate, ListPreview
from merch.rules.spec import RuleSpec
from ranking.types import ScoredItem
from serving.deps import AdminDep, RulePreviewDep, RulesDep
from serving.errors import DocumentedRoute, error_responses
from serving.usecases.preview import PreviewTarget, RulePreview

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
    rules: RulesDep,
    rule_set: Annotated[str | None, Query(max_length=64, description="Only this rule set.")] = None,
) -> RuleListOut:
    listed = rules.store.list(rule_set)
    return RuleListOut(rules=[rule_out(r) for r in listed], rule_sets=rules.rule_sets())


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
def create_rule(body: RuleSpec, rules: RulesDep, response: Response) -> RuleOut:
    rule, warnings = rules.create(body)
    response.headers["Location"] = f"/v1/rules/{rule.rule_id}"
    return rule_out(rule, warnings)


@router.get("/{rule_id}", response_model=RuleOut, summary="Get a rule")
def get_rule(rule_id: str, rules: RulesDep) -> RuleOut:
    return rule_out(rules.get(rule_id))


@router.put("/{rule_id}", response_model=RuleOut, summary="Replace a rule",
            responses=error_responses(409))
def put_rule(rule_id: str, body: RuleSpec, rules: RulesDep) -> RuleOut:
    rule, warnings = rules.update(rule_id, body)
    return rule_out(rule, warnings)


@router.delete("/{rule_id}", status_code=204, summary="Delete a rule")
def delete_rule(rule_id: str, rules: RulesDep) -> Response:
    rules.delete(rule_id)
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

    def target(self) -> PreviewTarget:
        return PreviewTarget(**self.model_dump(exclude={"rule"}))


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


def _items(items: list[ScoredItem], catalog: Catalog) -> list[PreviewItemOut]:
    out = []
    for n, s in enumerate(items, 1):
        item = catalog.get(s.item_id)
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


def _list_out(p: ListPreview, catalog: Catalog) -> ListPreviewOut:
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
        before=_items(p.before, catalog),
        after=_items(p.after, catalog),
        moves=[
            MoveOut(item_id=m.item_id, title=m.title, before=m.before, after=m.after, kind=m.kind)
            for m in p.moves
        ],
    )


def _impact_out(e: ImpactEstimate, catalog: Catalog) -> ImpactOut:
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
        examples=[_list_out(x, catalog) for x in e.examples],
    )


def preview_out(result: RulePreview, catalog: Catalog) -> PreviewOut:
    """A preview as the API answers it (also rendered by the console and the CLI)."""
    return PreviewOut(
        valid=result.valid,
        problems=result.problems,
        warnings=result.warnings,
        preview=_list_out(result.preview, catalog),
        impact=_impact_out(result.impact, catalog) if result.impact is not None else None,
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
def preview(body: PreviewIn, previewer: RulePreviewDep) -> PreviewOut:
    return preview_out(previewer.preview(body.rule, body.target()), previewer.catalog)


CONTEXTS: tuple[Literal["feed", "search", "similar", "bought_together"], ...] = RULE_CONTEXTS
