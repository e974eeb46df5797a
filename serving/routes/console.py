"""``/console``: the merchandiser's web console (server-rendered HTML, Jinja2, no CDN).

Log in with the admin key (kept in an HttpOnly, SameSite=Strict cookie). Every state-changing
form also carries a per-session CSRF token: login sets a random session id in a second cookie,
forms embed HMAC(admin key, session id), and a POST whose token is missing or wrong is refused
with 403 before anything changes (SameSite alone does not cover older browsers or same-site
subdomains). Pages: search the
catalog (or open a user's feed) and see ranked results with reasons and facets; rules with a
live preview beside the form; experiments with their results and charts; model versions with
promote and rollback. Forms post ``application/x-www-form-urlencoded``; the live preview uses
a few lines of build-free JavaScript (``static/console.js``) and works without it too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from analytics.model_history import console_view
from analytics.statistics import METRIC_LABELS, METRICS, RATE_METRICS
from core.errors import ShopRankError, describe
from merch.experiments import ExperimentSpec, experiment_as_dict
from merch.rules.model import RULE_CONTEXTS
from merch.rules.spec import RuleSpec
from serving.deps import ServicesDep
from serving.errors import BadRequest
from serving.merch import merch
from serving.state import Services

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
COOKIE = "shoprank_console"
SESSION_COOKIE = "shoprank_console_session"
CSRF_FIELD = "csrf_token"
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@lru_cache(maxsize=1)
def _env():  # type: ignore[no-untyped-def]
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(CONSOLE_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "–" if v is None else f"{v:.2%}"
    env.filters["num"] = lambda v: "–" if v is None else f"{v:,.2f}"
    env.filters["signed_pct"] = lambda v: "–" if v is None else f"{v:+.1%}"
    env.globals["metric_labels"] = METRIC_LABELS
    env.globals["rate_metrics"] = RATE_METRICS
    return env


def page(template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    html = _env().get_template(template).render(**ctx)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _logged_in(request: Request, services: Services) -> bool:
    expected = services.settings.admin_api_key
    got = request.cookies.get(COOKIE)
    return bool(
        expected and got and hmac.compare_digest(got.encode(), expected.get_secret_value().encode())
    )


def csrf_token(request: Request, services: Services) -> str:
    """This session's CSRF token: HMAC(admin key, the session cookie's random id)."""
    key = services.settings.admin_api_key
    session = request.cookies.get(SESSION_COOKIE, "")
    if key is None or not session:
        return ""
    msg = f"shoprank-console-csrf:{session}".encode()
    return hmac.new(key.get_secret_value().encode(), msg, hashlib.sha256).hexdigest()


async def require_console(request: Request, services: ServicesDep) -> Services:
    """Logged in (else 303 to the login form); a POST must carry this session's CSRF token."""
    if not _logged_in(request, services) or not request.cookies.get(SESSION_COOKIE):
        # 303 + Location: the browser goes to the login form (the JSON body is ignored)
        raise HTTPException(
            status_code=303, detail="log in first", headers={"Location": "/console/login"}
        )
    if request.method == "POST":
        sent = _one(await _form(request), CSRF_FIELD) or request.headers.get("X-CSRF-Token", "")
        expected = csrf_token(request, services).encode()
        if not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected):
            raise HTTPException(
                status_code=403,
                detail=f"{CSRF_FIELD}: missing or wrong CSRF token; nothing was changed — "
                "reload the console page and submit the form again",
            )
    return services


ConsoleDep = Annotated[Services, Depends(require_console)]


def page_csrf(request: Request, services: ConsoleDep) -> str:
    """The token the page's forms embed (``csrf`` in the templates)."""
    return csrf_token(request, services)


CsrfDep = Annotated[str, Depends(page_csrf)]


async def _form(request: Request) -> dict[str, list[str]]:
    try:
        body = (await request.body()).decode("utf-8")
        # percent-escapes that are not UTF-8 are refused too, not turned into U+FFFD
        return parse_qs(body, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("the form is not valid UTF-8 text", field="(body)") from None


MAX_DURATION_DAYS = 3650


def _duration_days(text: str) -> float:
    """The rule form's duration: a positive number of days, at most ten years."""
    try:
        days = float(text)
    except ValueError:
        raise ValueError(f"duration_days: {text!r} is not a number of days") from None
    if not 0 < days <= MAX_DURATION_DAYS:
        raise ValueError(f"duration_days: must be more than 0 and at most {MAX_DURATION_DAYS}")
    return days


def _one(f: dict[str, list[str]], name: str, default: str = "") -> str:
    return (f.get(name) or [default])[0].strip()


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------------------- login
@router.get("/static/{name}")
def static(name: str) -> Response:
    path = CONSOLE_DIR / "static" / name
    if "/" in name or path.suffix not in STATIC_TYPES or not path.is_file():
        return Response("not found", status_code=404)
    return FileResponse(
        path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "max-age=300"}
    )


@router.get("/login")
def login_form(services: ServicesDep, error: str = "") -> HTMLResponse:
    disabled = services.settings.admin_api_key is None
    return page("login.html", error=error, disabled=disabled, user=None)


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    f = await _form(request)
    key = _one(f, "key")
    expected = services.settings.admin_api_key
    if expected is None:
        return page(
            "login.html",
            403,
            error="The console is disabled: set SHOPRANK_ADMIN_API_KEY.",
            disabled=True,
        )
    if not key or not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        return page("login.html", 401, error="That is not the admin key.", disabled=False)
    resp = _redirect("/console/overview")
    for name, value in ((COOKIE, key), (SESSION_COOKIE, secrets.token_urlsafe(24))):
        resp.set_cookie(
            name,
            value,
            httponly=True,
            samesite="strict",
            path="/console",
            secure=request.url.scheme == "https",
            max_age=12 * 3600,
        )
    return resp


@router.post("/logout")
def logout(services: ConsoleDep) -> Response:
    resp = _redirect("/console/login")
    resp.delete_cookie(COOKIE, path="/console")
    resp.delete_cookie(SESSION_COOKIE, path="/console")
    return resp


@router.get("")
@router.get("/")
def home(services: ConsoleDep) -> Response:
    return _redirect("/console/overview")


# ---------------------------------------------------------------------------- search
@router.get("/search")
def search_page(
    services: ConsoleDep,
    csrf: CsrfDep,
    q: Annotated[str, Query(max_length=500)] = "",
    user_id: Annotated[str, Query(max_length=128)] = "",
    surface: Annotated[str, Query(pattern="^(search|feed)$")] = "search",
    brand: Annotated[str, Query(max_length=200)] = "",
    category: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    from search.query import SearchRequest, TermsFilter
    from serving.services import run_search

    error = ""
    hits: list[dict[str, Any]] = []
    facets: dict[str, list[dict[str, Any]]] = {}
    meta: dict[str, Any] = {}
    rid = "console-" + uuid.uuid4().hex[:12]
    try:
        if surface == "feed":
            ranked = services.pipeline.feed(user_id=user_id or None, request_id=rid, depth=40)
            meta = {
                "strategy": ranked.strategy,
                "experiment": ranked.assignment.experiment if ranked.assignment else None,
                "variant": ranked.assignment.variant if ranked.assignment else None,
                "total": len(ranked.items),
            }
            for s in ranked.items[:20]:
                item = services.catalog.get(s.item_id)
                if item is None:
                    continue
                hits.append(
                    {
                        "item_id": s.item_id,
                        "title": item.title,
                        "brand": item.brand,
                        "category": list(item.category),
                        "price": item.price,
                        "currency": item.currency,
                        "score": s.score,
                        "reasons": [r.as_dict() for r in s.reasons],
                        "breakdown": dict(s.breakdown),
                    }
                )
        elif q or brand or category:
            filters = []
            if brand:
                filters.append(TermsFilter(field="brand", values=(brand,)))
            if category:
                filters.append(TermsFilter(field="category_l1", values=(category,)))
            req = SearchRequest(
                text=q,
                user_id=user_id or None,
                filters=tuple(filters),
                size=20,
                facets=("category_l1", "brand", "price"),
            )
            out = run_search(
                req,
                backend=services.search,
                pipeline=services.pipeline,
                rules=services.rules,
                catalog=services.catalog,
                settings=services.settings,
                debug=True,
                request_id=rid,
            )
            d = out.model_dump()
            hits = d["hits"]
            facets = d["facets"]
            meta = {
                k: d.get(k)
                for k in (
                    "total",
                    "rewritten_query",
                    "redirect",
                    "personalized",
                    "backend",
                    "took_ms",
                    "experiment",
                    "variant",
                    "relaxation",
                    "suggestion",
                    "price_filter",
                )
            }
    except ShopRankError as exc:
        error = str(exc)
    except ValidationError as exc:
        error = describe(exc)
    users = sorted(services.profiles.ids())[:200] if hasattr(services.profiles, "ids") else []
    return page(
        "search.html",
        csrf=csrf,
        active="search",
        q=q,
        user_id=user_id,
        surface=surface,
        brand=brand,
        category=category,
        hits=hits,
        facets=facets,
        meta=meta,
        error=error,
        users=users,
        link=lambda **kw: (
            "/console/search?"
            + urlencode(
                {
                    k: v
                    for k, v in {
                        "q": q,
                        "user_id": user_id,
                        "surface": surface,
                        "brand": brand,
                        "category": category,
                        **kw,
                    }.items()
                    if v
                }
            )
        ),
    )


# ---------------------------------------------------------------------------- rules
def _split(text: str) -> list[str]:
    return [p.strip() for p in text.replace("，", ",").replace("\n", ",").split(",") if p.strip()]


def _dt(text: str) -> str | None:
    if not text:
        return None
    d = datetime.fromisoformat(text)
    return (d.replace(tzinfo=UTC) if d.tzinfo is None else d).isoformat()


def spec_from_form(f: dict[str, list[str]]) -> RuleSpec:
    """The rule form (or its JSON box) as a RuleSpec; raises ValidationError / ValueError."""
    raw = _one(f, "rule_json")
    if raw:
        return RuleSpec.model_validate_json(raw)
    cond: dict[str, Any] = {"contexts": [c for c in f.get("contexts", []) if c in RULE_CONTEXTS]}
    if _one(f, "query_text"):
        cond["query"] = {"text": _one(f, "query_text"), "match": _one(f, "query_match", "equals")}
    if _one(f, "condition_category"):
        cond["category"] = _one(f, "condition_category")
    if _one(f, "segment_values"):
        cond["user_attributes"] = {
            _one(f, "segment_attribute", "segment") or "segment": _split(_one(f, "segment_values"))
        }
    flt: dict[str, Any] = {}
    for name in ("item_ids", "brands", "tags"):
        if _one(f, f"filter_{name}"):
            flt[name] = _split(_one(f, f"filter_{name}"))
    if _one(f, "filter_categories"):
        flt["categories"] = [c for c in _one(f, "filter_categories").split(",") if c.strip()]
    for name in ("price_min", "price_max", "new_arrival_days"):
        if _one(f, f"filter_{name}"):
            flt[name] = _one(f, f"filter_{name}")
    if _one(f, "filter_in_stock") in ("true", "false"):
        flt["in_stock"] = _one(f, "filter_in_stock") == "true"
    kind = _one(f, "action_type", "pin")
    action: dict[str, Any] = {"type": kind}
    if kind == "pin":
        pins = []
        for n, part in enumerate(_split(_one(f, "pins")), 1):
            item, _, pos = part.partition("@")
            pins.append({"item_id": item.strip(), "position": pos.strip() or n})
        action["pins"] = pins
    elif kind in ("boost", "bury"):
        action["filter"] = flt
        action["weight"] = _one(f, "weight", "0.5") or "0.5"
    elif kind in ("hide", "filter"):
        action["filter"] = flt
    elif kind == "redirect":
        if _one(f, "redirect_category"):
            action["category"] = _one(f, "redirect_category")
        if _one(f, "redirect_url"):
            action["url"] = _one(f, "redirect_url")
    elif kind == "rewrite":
        action["text"] = _one(f, "rewrite_text")
        action["mode"] = _one(f, "rewrite_mode", "replace")
    start, end = _dt(_one(f, "start")), _dt(_one(f, "end"))
    days = _one(f, "duration_days")
    if days:
        begin = datetime.fromisoformat(start) if start else datetime.now(UTC)
        start, end = begin.isoformat(), (begin + timedelta(days=_duration_days(days))).isoformat()
    body: dict[str, Any] = {
        "name": _one(f, "name") or "untitled rule",
        "description": _one(f, "description"),
        "priority": _one(f, "priority", "0") or "0",
        "enabled": _one(f, "enabled", "") in ("on", "true", "1"),
        "stop_processing": _one(f, "stop_processing", "") in ("on", "true", "1"),
        "rule_set": _one(f, "rule_set", "default") or "default",
        "start": start,
        "end": end,
        "condition": cond,
        "actions": [action],
    }
    if _one(f, "id"):
        body["id"] = _one(f, "id")
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
def rules_page(
    services: ConsoleDep, csrf: CsrfDep, saved: str = "", error: str = ""
) -> HTMLResponse:
    from serving.routes.rules import rule_out

    m = merch(services)
    rules = [rule_out(r).model_dump() for r in m.rules.store.list()]
    return page(
        "rules.html",
        csrf=csrf,
        active="rules",
        rules=rules,
        saved=saved,
        error=error,
        rule_sets=m.rules.rule_sets(),
    )


def _rule_form(
    services: Services,
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
    services: ConsoleDep,
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
    return _rule_form(services, values, csrf=csrf, editing=None, preview=preview)


@router.get("/rules/{rule_id}/edit")
def edit_rule(rule_id: str, services: ConsoleDep, csrf: CsrfDep) -> HTMLResponse:
    spec = RuleSpec.of(merch(services).rules.get(rule_id))
    preview = {
        "surface": "",
        "query": spec.condition.query.text if spec.condition.query else "",
        "user_id": "",
        "item_id": "",
        "sample_size": 30,
    }
    return _rule_form(services, form_from_spec(spec), csrf=csrf, editing=rule_id, preview=preview)


def _preview_args(f: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "surface": _one(f, "preview_surface"),
        "query": _one(f, "preview_query"),
        "user_id": _one(f, "preview_user"),
        "item_id": _one(f, "preview_item"),
        "sample_size": _one(f, "sample_size", "30") or "30",
    }


def _render_preview(
    services: Services, f: dict[str, list[str]], editing: str | None
) -> tuple[str, int]:
    from serving.routes.rules import PreviewIn, run_preview

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
        result = run_preview(services, body, rule_id=editing)
    except ValidationError as exc:
        return _env().get_template("_preview.html").render(error=describe(exc), r=None), 422
    except (ShopRankError, ValueError) as exc:
        return _env().get_template("_preview.html").render(error=str(exc), r=None), 400
    return _env().get_template("_preview.html").render(error="", r=result.model_dump()), 200


@router.post("/rules/preview")
async def preview_fragment(request: Request, services: ConsoleDep) -> HTMLResponse:
    f = await _form(request)
    editing = _one(f, "editing") or None
    html, status = _render_preview(services, f, editing)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


@router.post("/rules/save")
async def save_rule(request: Request, services: ConsoleDep, csrf: CsrfDep) -> Response:
    f = await _form(request)
    editing = _one(f, "editing") or None
    values = {k: (v if k == "contexts" else v[0]) for k, v in f.items()}
    values["enabled"] = _one(f, "enabled") in ("on", "true", "1")
    values["stop_processing"] = _one(f, "stop_processing") in ("on", "true", "1")
    preview = {k: v for k, v in _preview_args(f).items()}
    if _one(f, "do") == "preview":
        html, status = _render_preview(services, f, editing)
        return _rule_form(
            services,
            values,
            csrf=csrf,
            editing=editing,
            preview_html=html,
            preview=preview,
            status=status,
        )
    try:
        spec = spec_from_form(f)
        m = merch(services)
        rule = m.rules.update(editing, spec)[0] if editing else m.rules.create(spec)[0]
    except ValidationError as exc:
        return _rule_form(
            services,
            values,
            csrf=csrf,
            editing=editing,
            error=describe(exc),
            preview=preview,
            status=422,
        )
    except (ShopRankError, ValueError) as exc:
        return _rule_form(
            services,
            values,
            csrf=csrf,
            editing=editing,
            error=str(exc),
            preview=preview,
            status=400,
        )
    return _redirect(f"/console/rules?saved={rule.rule_id}")


@router.post("/rules/{rule_id}/toggle")
def toggle_rule(rule_id: str, services: ConsoleDep) -> Response:
    m = merch(services)
    rule = m.rules.get(rule_id)
    try:
        m.rules.set_enabled(rule_id, not rule.enabled)
    except ShopRankError as exc:
        return _redirect("/console/rules?" + urlencode({"error": str(exc)}))
    return _redirect(f"/console/rules?saved={rule_id}")


@router.post("/rules/{rule_id}/delete")
def delete_rule(rule_id: str, services: ConsoleDep) -> Response:
    merch(services).rules.delete(rule_id)
    return _redirect("/console/rules")


# ---------------------------------------------------------------------------- experiments
def _weights(text: str) -> dict[str, float]:
    """'for_you=1, trending=0.1' → {'for_you': 1.0, 'trending': 0.1}"""
    out: dict[str, float] = {}
    for part in _split(text):
        name, _, value = part.partition("=")
        if not value:
            raise ValueError(f"blend weights: write name=weight, got {part!r}")
        out[name.strip()] = float(value)
    return out


@router.get("/experiments")
def experiments_page(services: ConsoleDep, csrf: CsrfDep, error: str = "") -> HTMLResponse:
    exps = [experiment_as_dict(e) for e in merch(services).experiments.list()]
    return page(
        "experiments.html", csrf=csrf, active="experiments", experiments=exps, error=error, v={}
    )


@router.post("/experiments")
async def create_experiment(request: Request, services: ConsoleDep, csrf: CsrfDep) -> Response:
    f = await _form(request)
    values = {k: v[0] for k, v in f.items()}
    try:
        variants = []
        for tag in ("a", "b"):
            ov: dict[str, Any] = {}
            if _one(f, f"{tag}_weights"):
                ov["blend_weights"] = _weights(_one(f, f"{tag}_weights"))
            if _one(f, f"{tag}_rule_set"):
                ov["rule_set"] = _one(f, f"{tag}_rule_set")
            if _one(f, f"{tag}_model_versions"):
                ov["model_versions"] = dict(
                    p.split("=", 1) for p in _split(_one(f, f"{tag}_model_versions"))
                )
            if _one(f, f"{tag}_personalization"):
                ov["personalization_weight"] = _one(f, f"{tag}_personalization")
            variants.append(
                {
                    "name": _one(f, f"{tag}_name") or tag.upper(),
                    "share": _one(f, f"{tag}_share") or "50",
                    "overrides": ov,
                }
            )
        spec = ExperimentSpec.model_validate(
            {
                "id": _one(f, "id") or None,
                "name": _one(f, "name") or "experiment",
                "surfaces": [s for s in f.get("surfaces", []) if s],
                "variants": variants,
            }
        )
        m = merch(services)
        e = m.experiments.create(spec)
        if _one(f, "start_now") in ("on", "true", "1"):
            m.experiments.start(e.experiment_id)
    except ValidationError as exc:
        return page(
            "experiments.html",
            422,
            csrf=csrf,
            active="experiments",
            error=describe(exc),
            v=values,
            experiments=[experiment_as_dict(x) for x in merch(services).experiments.list()],
        )
    except (ShopRankError, ValueError) as exc:
        return page(
            "experiments.html",
            400,
            csrf=csrf,
            active="experiments",
            error=str(exc),
            v=values,
            experiments=[experiment_as_dict(x) for x in merch(services).experiments.list()],
        )
    return _redirect(f"/console/experiments/{e.experiment_id}")


@router.post("/experiments/{experiment_id}/{action}")
def experiment_action(experiment_id: str, action: str, services: ConsoleDep) -> Response:
    m = merch(services)
    try:
        if action == "start":
            m.experiments.start(experiment_id)
        elif action == "stop":
            m.experiments.stop(experiment_id)
        elif action == "delete":
            m.experiments.delete(experiment_id)
            return _redirect("/console/experiments")
        else:
            return Response("unknown action", status_code=404)
    except ShopRankError as exc:
        return _redirect("/console/experiments?" + urlencode({"error": str(exc)}))
    return _redirect(f"/console/experiments/{experiment_id}")


@router.get("/experiments/{experiment_id}")
def experiment_page(
    experiment_id: str,
    services: ConsoleDep,
    csrf: CsrfDep,
    metric: Annotated[str, Query(pattern="^(" + "|".join(METRICS) + ")$")] = "ctr",
) -> HTMLResponse:
    from analytics.charts import inline_svg, variant_chart
    from serving.routes.experiments import experiment_report

    exp = merch(services).experiments.get(experiment_id)
    report = experiment_report(services, experiment_id, metric)
    chart = (
        inline_svg(variant_chart(report, metric)) if any(r.users for r in report.by_variant) else ""
    )
    return page(
        "experiment.html",
        csrf=csrf,
        active="experiments",
        e=experiment_as_dict(exp),
        r=report.as_dict(),
        chart=chart,
        metric=metric,
        metrics=METRICS,
        comparisons=[c for c in report.as_dict()["comparisons"]],
    )  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- models
@router.get("/models")
def models_page(
    services: ConsoleDep, csrf: CsrfDep, error: str = "", done: str = ""
) -> HTMLResponse:
    models: list[dict[str, Any]] = []
    try:
        from serving.routes.models import list_models

        models = list_models(services, "console").model_dump()["models"]
    except ShopRankError as exc:
        error = error or str(exc)
    except ImportError:
        error = error or "the model registry is not available in this build"
    history_svg, runs = console_view(services.settings.models_dir)
    return page(
        "models.html",
        csrf=csrf,
        active="models",
        models=models,
        error=error,
        done=done,
        serving=services.models.versions,
        history_svg=history_svg,
        runs=runs,
    )


@router.post("/models/{name}/{action}")
async def model_action(name: str, action: str, request: Request, services: ConsoleDep) -> Response:
    from serving.routes.models import promote, rollback
    from serving.schemas import PromoteIn

    f = await _form(request)
    try:
        if action == "promote":
            out = promote(name, PromoteIn(version=_one(f, "version")), services, "console")
        elif action == "rollback":
            out = rollback(name, services, "console")
        else:
            return Response("unknown action", status_code=404)
    except (ShopRankError, ValidationError) as exc:
        msg = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        return _redirect("/console/models?" + urlencode({"error": msg}))
    return _redirect(
        "/console/models?" + urlencode({"done": f"{name} now at {out.current_version}"})
    )
