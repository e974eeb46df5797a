"""``/console``: the merchandiser's web console (server-rendered HTML, Jinja2, no CDN).

Log in with the admin key (kept in an HttpOnly, SameSite=Strict cookie). Every state-changing
form also carries a per-session CSRF token: login sets a random session id in a second cookie,
forms embed HMAC(admin key, session id), and a POST whose token is missing or wrong is refused
with 403 before anything changes (SameSite alone does not cover older browsers or same-site
subdomains). This module holds what every page shares (log-in, the CSRF check, form reading,
templates, static files); each page has its module: ``console_search`` (search the catalog or
open a user's feed; search analytics), ``console_rules`` (rules with a live preview beside the
form), ``console_experiments`` (experiments with their results and charts), ``console_models``
(model versions with promote and rollback), ``console_overview``, and ``segments``. Forms post
``application/x-www-form-urlencoded``; the live preview uses
a few lines of build-free JavaScript (``static/console.js``) and works without it too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from analytics.statistics import METRIC_LABELS, RATE_METRICS
from core.settings import Settings
from serving.deps import SettingsDep
from serving.errors import BadRequest

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
def templates():  # type: ignore[no-untyped-def]
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
    html = templates().get_template(template).render(**ctx)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _logged_in(request: Request, settings: Settings) -> bool:
    expected = settings.admin_api_key
    got = request.cookies.get(COOKIE)
    return bool(
        expected and got and hmac.compare_digest(got.encode(), expected.get_secret_value().encode())
    )


def csrf_token(request: Request, settings: Settings) -> str:
    """This session's CSRF token: HMAC(admin key, the session cookie's random id)."""
    key = settings.admin_api_key
    session = request.cookies.get(SESSION_COOKIE, "")
    if key is None or not session:
        return ""
    msg = f"shoprank-console-csrf:{session}".encode()
    return hmac.new(key.get_secret_value().encode(), msg, hashlib.sha256).hexdigest()


async def require_console(request: Request, settings: SettingsDep) -> None:
    """Logged in (else 303 to the login form); a POST must carry this session's CSRF token."""
    if not _logged_in(request, settings) or not request.cookies.get(SESSION_COOKIE):
        # 303 + Location: the browser goes to the login form (the JSON body is ignored)
        raise HTTPException(
            status_code=303, detail="log in first", headers={"Location": "/console/login"}
        )
    if request.method == "POST":
        form = await read_form(request)
        sent = form_value(form, CSRF_FIELD) or request.headers.get("X-CSRF-Token", "")
        expected = csrf_token(request, settings).encode()
        if not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected):
            raise HTTPException(
                status_code=403,
                detail=f"{CSRF_FIELD}: missing or wrong CSRF token; nothing was changed — "
                "reload the console page and submit the form again",
            )


ConsoleDep = Depends(require_console)
"""On every console page but the log-in (``APIRouter(dependencies=[ConsoleDep])`` or the
route's ``dependencies``): FastAPI runs it before the page's own dependencies."""


def page_csrf(request: Request, settings: SettingsDep) -> str:
    """The token the page's forms embed (``csrf`` in the templates)."""
    return csrf_token(request, settings)


CsrfDep = Annotated[str, Depends(page_csrf)]


async def read_form(request: Request) -> dict[str, list[str]]:
    try:
        body = (await request.body()).decode("utf-8")
        # percent-escapes that are not UTF-8 are refused too, not turned into U+FFFD
        return parse_qs(body, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("the form is not valid UTF-8 text", field="(body)") from None


MAX_DURATION_DAYS = 3650


def duration_days(text: str) -> float:
    """The rule form's duration: a positive number of days, at most ten years."""
    try:
        days = float(text)
    except ValueError:
        raise ValueError(f"duration_days: {text!r} is not a number of days") from None
    if not 0 < days <= MAX_DURATION_DAYS:
        raise ValueError(f"duration_days: must be more than 0 and at most {MAX_DURATION_DAYS}")
    return days


def form_value(f: dict[str, list[str]], name: str, default: str = "") -> str:
    return (f.get(name) or [default])[0].strip()


def see_other(url: str) -> RedirectResponse:
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
def login_form(settings: SettingsDep, error: str = "") -> HTMLResponse:
    disabled = settings.admin_api_key is None
    return page("login.html", error=error, disabled=disabled, user=None)


@router.post("/login")
async def login(request: Request, settings: SettingsDep) -> Response:
    f = await read_form(request)
    key = form_value(f, "key")
    expected = settings.admin_api_key
    if expected is None:
        return page(
            "login.html",
            403,
            error="The console is disabled: set SHOPRANK_ADMIN_API_KEY.",
            disabled=True,
        )
    if not key or not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        return page("login.html", 401, error="That is not the admin key.", disabled=False)
    resp = see_other("/console/overview")
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


@router.post("/logout", dependencies=[ConsoleDep])
def logout() -> Response:
    resp = see_other("/console/login")
    resp.delete_cookie(COOKIE, path="/console")
    resp.delete_cookie(SESSION_COOKIE, path="/console")
    return resp


@router.get("", dependencies=[ConsoleDep])
@router.get("/", dependencies=[ConsoleDep])
def home() -> Response:
    return see_other("/console/overview")


def split_items(text: str) -> list[str]:
    return [p.strip() for p in text.replace("，", ",").replace("\n", ",").split(",") if p.strip()]
