"""Errors of the serving package, and the ONE place that maps errors to HTTP responses.

Every error body has the same shape::

    {"error": "not_found", "message": "item_id: no item 'x' in the catalog", "field": "item_id",
     "request_id": "…"}

- :class:`ApiError` subclasses (raised by routes) carry their status and field.
- Any other :class:`data.errors.ShopRankError` (raised by a library) becomes a 4xx by its class:
  see :data:`STATUS_BY_ERROR` (add a line here when a package adds an error that deserves a
  status other than 400).
- Request validation errors become 422 with a message naming each bad field.
- Anything else is a bug: 500 with a generic message, logged with its traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from core.errors import ShopRankError, StorageUnavailableError, describe
from data.errors import DataError, EventLogError
from models.errors import CorruptVersionError, RegistryError
from search.errors import BackendUnavailableError, IndexNotFoundError

log = logging.getLogger(__name__)


class SafeJSONResponse(JSONResponse):
    """JSON that always renders: text that cannot be UTF-8 (a lone surrogate echoed from a bad
    request) is written with ``\\uXXXX`` escapes instead of failing the response with a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(
                content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
            ).encode("ascii")


class ErrorOut(BaseModel):
    """The body of every error answer (documented in OpenAPI for each status a route gives)."""

    error: str = Field(description="A stable code, e.g. `not_found`, `validation_error`.")
    message: str = Field(description="What is wrong and how to fix it, naming the field.")
    field: str | None = Field(default=None, description="The field or parameter at fault.")
    request_id: str | None = Field(default=None, description="The request's id.")


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The input matches this schema but breaks a rule the schema cannot state (one field "
    "against another, a date range, unique names, a reference to what does not exist or is in "
    "the wrong state); the message names the field.",
    401: "No API key: send it in `X-API-Key` (or `Authorization: Bearer`).",
    403: "Not the right API key, or admin routes are disabled (no admin key configured).",
    404: "No such resource (the message names it).",
    409: "Conflicts with the current state (the message says which).",
    413: "The request body is larger than the limit (`SHOPRANK_MAX_BODY_BYTES`).",
    422: "The input does not match this schema: a type, bound, pattern or required field (the "
    "message names each one).",
    503: "A dependency (search index, event log, a store) cannot answer or persist now; "
    "nothing was changed: retry.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a router or route: each status with the error body's schema."""
    return {
        s: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[s]} for s in sorted(statuses)
    }


def _inputs(dependant: Dependant) -> tuple[bool, bool]:
    """(takes parameters or a body, takes a body), through its dependencies."""
    params = bool(dependant.path_params or dependant.query_params or dependant.header_params
                  or dependant.cookie_params)
    body = bool(dependant.body_params)
    for sub in dependant.dependencies:
        p, b = _inputs(sub)
        params, body = params or p, body or b
    return params or body, body


class DocumentedRoute(APIRoute):
    """A route documenting the error answers its inputs allow, with the error body: 400 and
    422 when it takes parameters or a body, 404 when its path names a resource, 413 when it
    takes a body. What depends on the configuration (401/403, 503) is added by ``create_app``;
    what depends on the use case (409, a 404 for a looked-up parameter) the route declares
    (``responses=error_responses(409)``). Use as ``APIRouter(route_class=DocumentedRoute)``."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        takes_input, takes_body = _inputs(get_dependant(path=path, call=endpoint))
        statuses = {400, 422} if takes_input else set()
        if "{" in path:
            statuses.add(404)
        if takes_body:
            statuses.add(413)
        kwargs["responses"] = {**error_responses(*statuses), **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)


class ApiError(ShopRankError):
    """An error with an HTTP status, raised by routes and dependencies."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BadRequest(ApiError):
    pass


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class Unavailable(ApiError):
    status_code = 503
    code = "unavailable"


STATUS_BY_ERROR: dict[type[ShopRankError], tuple[int, str]] = {
    DataError: (400, "bad_data"),
    EventLogError: (503, "event_log_unavailable"),
    StorageUnavailableError: (503, "storage_unavailable"),
    RegistryError: (400, "registry_error"),
    CorruptVersionError: (409, "corrupt_version"),
    BackendUnavailableError: (503, "search_unavailable"),
    IndexNotFoundError: (503, "index_missing"),
}
"""Status and code for library errors (most specific class wins via the MRO)."""


def _status_for(exc: ShopRankError) -> tuple[int, str]:
    if isinstance(exc, ApiError):
        return exc.status_code, exc.code
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    name = type(exc).__name__.lower()
    if ("notfound" in name and "index" not in name) or "unknown" in name:
        return 404, "not_found"
    if "conflict" in name:
        return 409, "conflict"
    if "unavailable" in name or "indexnotfound" in name:
        return 503, "unavailable"
    return 400, "bad_request"


def _body(request: Request, code: str, message: str, field: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"error": code, "message": message}
    if field:
        body["field"] = field
    rid = getattr(request.state, "request_id", None)
    if rid:
        body["request_id"] = rid
    return body


def _validation_message(errors: list[dict[str, object]]) -> tuple[str, str | None]:
    parts: list[str] = []
    first_field: str | None = None
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]  # type: ignore[union-attr]
        field = ".".join(loc) or "(body)"
        first_field = first_field or field
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{field}: {msg}")
    return "; ".join(parts[:5]) + (
        f" (and {len(parts) - 5} more)" if len(parts) > 5 else ""
    ), first_field


RULE_ERRORS = frozenset({"value_error", "assertion_error", "union_tag_not_found"})
"""Errors raised by a model's own validators: rules the OpenAPI schema cannot state (a date
range, unique names, one field against another, a ``type`` that can be left out only when
the other fields name it). Input that only breaks those matches the
schema and answers 400; input that breaks the schema itself (type, bound, pattern, a missing
field) answers 422."""

def is_rule_error(error: Mapping[str, Any]) -> bool:
    """Whether a validation error is a rule beyond the schema (see :data:`RULE_ERRORS`); text
    that satisfies the schema's ``minLength`` only before the model strips its whitespace
    (``"\t"``) counts as one too."""
    if error.get("type") in RULE_ERRORS:
        return True
    if error.get("type") == "string_too_short":
        given, ctx = error.get("input"), error.get("ctx") or {}
        return isinstance(given, str) and len(given) >= ctx.get("min_length", 1)
    return False


_STORAGE_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EIO}


def _storage_failure(exc: BaseException) -> str | None:
    """A message when ``exc`` (or what caused it) is durable state that cannot be written — a
    read-only or full disk, a locked or unopenable SQLite file — else None. Such a request
    acknowledged nothing: it answers 503, not a 500 that reads like a bug."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _STORAGE_ERRNOS:
            where = f" ({seen.filename})" if seen.filename else ""
            return f"state could not be saved{where}: {seen.strerror}; nothing was changed"
        if isinstance(seen, sqlite3.OperationalError):
            return f"state could not be saved: {seen}; nothing was changed"
        seen = seen.__cause__ or seen.__context__
    return None


def _route_table(app: Any) -> list[tuple[re.Pattern[str], frozenset[str], bool]]:
    """(path regex, methods, path has no parameters) of every route, built once per app."""
    table = getattr(app.state, "route_methods", None)
    if table is None:
        table = []
        for rc in iter_route_contexts(app.routes):
            methods = getattr(rc, "methods", None)
            if not methods:
                continue
            regex, _, convertors = compile_path(rc.path)
            table.append((regex, frozenset(methods), not convertors))
        app.state.route_methods = table
    return table


def allowed_methods(request: Request) -> str:
    """The ``Allow`` header of a 405: every method served on the request's path (one route
    per method, so Starlette alone names only the first route's). A path that is a fixed
    route (``/v1/rules/preview``) is not also counted as a value of a parameter
    (``/v1/rules/{rule_id}``)."""
    path = request.url.path
    hits = [(methods, static) for regex, methods, static in _route_table(request.app)
            if regex.match(path)]
    if any(static for _, static in hits):
        hits = [(m, static) for m, static in hits if static]
    return ", ".join(sorted({m for methods, _ in hits for m in methods}))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ShopRankError)
    async def _shoprank(request: Request, exc: ShopRankError) -> JSONResponse:
        status, code = _status_for(exc)
        field = getattr(exc, "field", None)
        return SafeJSONResponse(_body(request, code, str(exc), field), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        message, field = _validation_message(errors)  # type: ignore[arg-type]
        if errors and all(is_rule_error(e) for e in errors):
            return SafeJSONResponse(_body(request, "bad_request", message, field), status_code=400)
        return SafeJSONResponse(_body(request, "validation_error", message, field), status_code=422)

    @app.exception_handler(ValidationError)
    async def _pydantic_validation(request: Request, exc: ValidationError) -> JSONResponse:
        field = ".".join(str(p) for p in exc.errors()[0]["loc"]) if exc.errors() else None
        return SafeJSONResponse(
            _body(request, "validation_error", describe(exc), field), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return SafeJSONResponse(
            _body(request, code, str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    # Registered by class (not only under Exception) so Starlette's exception middleware
    # answers them like any handled error; the Exception handler runs in the outermost
    # middleware, which re-raises after answering and makes the server drop the connection.
    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        storage = _storage_failure(exc)
        if storage is not None:
            log.error("%s %s: %s", request.method, request.url.path, storage)
            return SafeJSONResponse(
                _body(request, "storage_unavailable", storage), status_code=503
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return SafeJSONResponse(
            _body(request, "internal_error", "internal error; see the server log"), status_code=500
        )
