"""The console's rules pages (``/console/rules``): the list, the form with a live preview
beside it, save, enable/disable and delete."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from core.errors import ShopRankError, describe
from merch.rules.model import RULE_CONTEXTS
from merch.rules.spec import RuleSpec
from serving.deps import RulePreviewDep, RulesDep
from serving.routes.console import (
    ConsoleDep,
    CsrfDep,
    duration_days,
    form_value,
    page,
    read_form,
    see_other,
    split_items,
    templates,
)
from serving.routes.rules import PreviewIn, preview_out, rule_out
from serving.usecases.preview import RulePreviewer

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[ConsoleDep])


def _dt(text: str) -> str | None:
    if not text:
        return None
    d = datetime.fromisoformat(text)
    return (d.replace(tzinfo=UTC) if d.tzinfo is None else d).isoformat()


def spec_from_form(f: dict[str, list[str]]) -> RuleSpec:
    """The rule form (or its JSON box) as a RuleSpec; raises ValidationError / ValueError."""
    raw = form_value(f, "rule_json")
    if raw:
        return RuleSpec.model_validate_json(raw)
    cond: dict[str, Any] = {"contexts": [c for c in f.get("contexts", []) if c in RULE_CONTEXTS]}
    if form_value(f, "query_text"):
        cond["query"] = {
            "text": form_value(f, "query_text"),
            "match": form_value(f, "query_match", "equals"),
        }
    if form_value(f, "condition_category"):
        cond["category"] = form_value(f, "condition_category")
    if form_value(f, "segment_values"):
        cond["user_attributes"] = {
            form_value(f, "segment_attribute", "segment")
            or "segment": split_items(form_value(f, "segment_values"))
        }
    flt: dict[str, Any] = {}
    for name in ("item_ids", "brands", "tags"):
        if form_value(f, f"filter_{name}"):
            flt[name] = split_items(form_value(f, f"filter_{name}"))
    if form_value(f, "filter_categories"):
        flt["categories"] = [c for c in form_value(f, "filter_categories").split(",") if c.strip()]
    for name in ("price_min", "price_max", "new_arrival_days"):
        if form_value(f, f"filter_{name}"):
            flt[name] = form_value(f, f"filter_{name}")
    if form_value(f, "filter_in_stock") in ("true", "false"):
        flt["in_stock"] = form_value(f, "filter_in_stock") == "true"
    kind = form_value(f, "action_type", "pin")
    action: dict[str, Any] = {"type": kind}
    if kind == "pin":
        pins = []
        for n, part in enumerate(split_items(form_value(f, "pins")), 1):
            item, _, pos = part.partition("@")
            pins.append({"item_id": item.strip(), "position": pos.strip() or n})
        action["pins"] = pins
    elif kind in ("boost", "bury"):
        action["filter"] = flt
        action["weight"] = form_value(f, "weight", "0.5") or "0.5"
    elif kind in ("hide", "filter"):
        action["filter"] = flt
    elif kind == "redirect":
        if form_value(f, "redirect_category"):
            action["category"] = form_value(f, "redirect_category")
        if form_value(f, "redirect_url"):
            action["url"] = form_value(f, "redirect_url")
    elif kind == "rewrite":
        action["text"] = form_value(f, "rewrite_text")
        action["mode"] = form_value(f, "rewrite_mode", "replace")
    start, end = _dt(form_value(f, "start")), _dt(form_value(f, "end"))
    days = form_value(f, "duration_days")
    if days:
        begin = datetime.fromisoformat(start) if start else datetime.now(UTC)
        start, end = begin.isoformat(), (begin + timedelta(days=duration_days(days))).isoformat()
    body: dict[str, Any] = {
        "name": form_value(f, "name") or "untitled rule",
        "description": form_value(f, "description"),
        "priority": form_value(f, "priority", "0") or "0",
        "enabled": form_value(f, "enabled", "") in ("on", "true", "1"),
        "stop_processing": form_value(f, "stop_processing", "") in ("on", "true", "1"),
        "rule_set": form_value(f, "rule_set", "default") or "default",
        "start": start,
        "end": end,
        "condition": cond,
        "actions": [action],
    }
    if form_value(f, "id"):
        body["id"] = form_value(f, "id")
    return RuleSpec.model_validate(body)


def form_from_spec(spec: RuleSpec) -> dict[str, Any]:
    """Values for the rule form (the first action fills the simple fields; all in JSON)."""
    c = spec.condition
    v: dict[str, Any] = {
        "id": spec.id or "",
        "name": spec.name,
        "description": spec.description,
        "priority": spec.priority,
        "enabled": spec.enabled,
        "stop_processing": spec.stop_processing,
        "rule_set": spec.rule_set,
        "start": spec.start.strftime("%Y-%m-%dT%H:%M") if spec.start else "",
        "end": spec.end.strftime("%Y-%m-%dT%H:%M") if spec.end else "",
        "contexts": list(c.contexts),
        "query_text": c.query.text if c.query else "",
        "query_match": c.query.match if c.query else "equals",
        "condition_category": " > ".join(c.category) if c.category else "",
        "rule_json": "",
    }
    if c.user_attributes:
        name, values = next(iter(c.user_attributes.items()))
        v["segment_attribute"], v["segment_values"] = (
            name,
            ", ".join(values if isinstance(values, list) else [values]),
        )
    if spec.actions:
        a = spec.actions[0].model_dump()
        v["action_type"] = a["type"]
        if a["type"] == "pin":
            v["pins"] = ", ".join(f"{p['item_id']}@{p['position']}" for p in a["pins"])
        flt = a.get("filter") or {}
        for name in ("item_ids", "brands", "tags"):
            v[f"filter_{name}"] = ", ".join(flt.get(name) or [])
        v["filter_categories"] = ", ".join(" > ".join(x) for x in flt.get("categories") or [])
        for name in ("price_min", "price_max", "new_arrival_days"):
            v[f"filter_{name}"] = "" if flt.get(name) is None else flt[name]
        v["filter_in_stock"] = "" if flt.get("in_stock") is None else str(flt["in_stock"]).lower()
        v["weight"] = a.get("weight", 0.5)
        v["redirect_category"] = (
            " > ".join(a.get("category") or []) if a["type"] == "redirect" else ""
        )
        v["redirect_url"] = a.get("url") or ""
        v["rewrite_text"] = a.get("text") or ""
        v["rewrite_mode"] = a.get("mode") or "replace"
        if len(spec.actions) > 1:
            v["rule_json"] = spec.model_dump_json(indent=1, exclude_none=True)
    return v


@router.get("/rules")
def rules_page(rules: RulesDep, csrf: CsrfDep, saved: str = "", error: str = "") -> HTMLResponse:
    return page(
        "rules.html",
        csrf=csrf,
        active="rules",
        rules=[rule_out(r).model_dump() for r in rules.store.list()],
        saved=saved,
        error=error,
        rule_sets=rules.rule_sets(),
    )


def _rule_form(
    values: dict[str, Any],
    *,
    csrf: str,
    editing: str | None,
    error: str = "",
    preview_html: str = "",
    preview: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    return page(
        "rule_form.html",
        status,
        csrf=csrf,
        active="rules",
        v=values,
        editing=editing,
        error=error,
        contexts=RULE_CONTEXTS,
        preview_html=preview_html,
        p=preview or {},
    )


@router.get("/rules/new")
def new_rule(
    csrf: CsrfDep,
    pin: Annotated[str, Query(max_length=128)] = "",
    query: Annotated[str, Query(max_length=200)] = "",
    brand: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    values: dict[str, Any] = {
        "enabled": True,
        "priority": 0,
        "rule_set": "default",
        "query_match": "equals",
        "action_type": "pin",
        "weight": 0.5,
        "contexts": [],
    }
    preview = {"surface": "", "query": query, "user_id": "", "item_id": "", "sample_size": 30}
    if pin:
        values.update(
            name=f"Pin {pin}" + (f" for {query}" if query else ""),
            action_type="pin",
            pins=f"{pin}@1",
        )
        if query:
            values.update(contexts=["search"], query_text=query)
    if brand:
        values.update(
            name=f"Bury {brand} in the feed for a week",
            action_type="bury",
            filter_brands=brand,
            weight=1.0,
            contexts=["feed"],
            duration_days="7",
        )
    return _rule_form(values, csrf=csrf, editing=None, preview=preview)


@router.get("/rules/{rule_id}/edit")
def edit_rule(rule_id: str, rules: RulesDep, csrf: CsrfDep) -> HTMLResponse:
    spec = RuleSpec.of(rules.get(rule_id))
    preview = {
        "surface": "",
        "query": spec.condition.query.text if spec.condition.query else "",
        "user_id": "",
        "item_id": "",
        "sample_size": 30,
    }
    return _rule_form(form_from_spec(spec), csrf=csrf, editing=rule_id, preview=preview)


def _preview_args(f: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "surface": form_value(f, "preview_surface"),
        "query": form_value(f, "preview_query"),
        "user_id": form_value(f, "preview_user"),
        "item_id": form_value(f, "preview_item"),
        "sample_size": form_value(f, "sample_size", "30") or "30",
    }


def _render_preview(
    previewer: RulePreviewer, f: dict[str, list[str]], editing: str | None
) -> tuple[str, int]:
    args = _preview_args(f)
    try:
        spec = spec_from_form(f)
        body = PreviewIn.model_validate(
            {
                "rule": spec.model_dump(mode="json"),
                "surface": args["surface"] or None,
                "query": args["query"] or None,
                "user_id": args["user_id"] or None,
                "item_id": args["item_id"] or None,
                "sample_size": args["sample_size"],
                "k": 10,
            }
        )
        found = previewer.preview(body.rule, body.target(), rule_id=editing)
        result = preview_out(found, previewer.catalog)
    except ValidationError as exc:
        return templates().get_template("_preview.html").render(error=describe(exc), r=None), 422
    except (ShopRankError, ValueError) as exc:
        return templates().get_template("_preview.html").render(error=str(exc), r=None), 400
    return templates().get_template("_preview.html").render(error="", r=result.model_dump()), 200


@router.post("/rules/preview")
async def preview_fragment(request: Request, previewer: RulePreviewDep) -> HTMLResponse:
    f = await read_form(request)
    editing = form_value(f, "editing") or None
    html, status = _render_preview(previewer, f, editing)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


@router.post("/rules/save")
async def save_rule(
    request: Request,
    rules: RulesDep,
    previewer: RulePreviewDep,
    csrf: CsrfDep,
) -> Response:
    f = await read_form(request)
    editing = form_value(f, "editing") or None
    values = {k: (v if k == "contexts" else v[0]) for k, v in f.items()}
    values["enabled"] = form_value(f, "enabled") in ("on", "true", "1")
    values["stop_processing"] = form_value(f, "stop_processing") in ("on", "true", "1")
    preview = {k: v for k, v in _preview_args(f).items()}
    if form_value(f, "do") == "preview":
        html, status = _render_preview(previewer, f, editing)
        return _rule_form(values, csrf=csrf, editing=editing, preview_html=html, preview=preview,
                          status=status)
    try:
        spec = spec_from_form(f)
        rule = rules.update(editing, spec)[0] if editing else rules.create(spec)[0]
    except (ValidationError, ShopRankError, ValueError) as exc:
        invalid = isinstance(exc, ValidationError)  # the form breaks the schema: 422, else 400
        return _rule_form(values, csrf=csrf, editing=editing, preview=preview,
                          error=describe(exc) if invalid else str(exc),
                          status=422 if invalid else 400)
    return see_other(f"/console/rules?saved={rule.rule_id}")


@router.post("/rules/{rule_id}/toggle")
def toggle_rule(rule_id: str, rules: RulesDep) -> Response:
    rule = rules.get(rule_id)
    try:
        rules.set_enabled(rule_id, not rule.enabled)
    except ShopRankError as exc:
        return see_other("/console/rules?" + urlencode({"error": str(exc)}))
    return see_other(f"/console/rules?saved={rule_id}")


@router.post("/rules/{rule_id}/delete")
def delete_rule(rule_id: str, rules: RulesDep) -> Response:
    rules.delete(rule_id)
    return see_other("/console/rules")
