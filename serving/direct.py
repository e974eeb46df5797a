"""The hot storefront GET routes, called without FastAPI's per-request dispatch.

FastAPI walks the included routers, builds the request handler's context and solves the
route's dependencies and query model on every request: for ``/v1/recommendations`` that is
about 165 µs of CPU of a 960 µs request in-process (docs/decisions.md, "Hot routes keep a
direct dispatch"). A route opts in with :func:`direct` when it is
``async def f(q: Annotated[Model, Query()], ctx: StorefrontCtx) -> Response`` on a fixed
path. It stays declared in FastAPI, which documents it in OpenAPI and answers every other
method on its path; :class:`DirectRoutes`, an ASGI middleware inside the metrics one, serves
its GETs: the query validated by the same model (a bad value: the 422 FastAPI gives), the
storefront key checked when one is configured, the app's exception handlers, and
``scope["route"]`` set for the metrics. ``tests/serving/test_direct.py`` checks both
dispatches give the same answers.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.deps import Storefront, check_storefront_key, header_key, storefront

Endpoint = Callable[[Any, Storefront], Awaitable[Response]]

_MARK = "__shoprank_direct__"


def direct(endpoint: Endpoint) -> Endpoint:
    """Mark a storefront GET endpoint for :class:`DirectRoutes` (put it under ``@router.get``)."""
    if not inspect.iscoroutinefunction(endpoint) or list(
        inspect.signature(endpoint).parameters
    ) != ["q", "ctx"]:
        raise TypeError(f"{endpoint.__name__}: a direct route is `async def f(q, ctx)`")
    setattr(endpoint, _MARK, True)
    return endpoint


class _Route(typing.NamedTuple):
    route: APIRoute
    model: type[BaseModel]
    lists: frozenset[str]
    """Parameters that take repeated values (``?history=a&history=b``)."""


def _query_model(endpoint: Endpoint) -> type[BaseModel]:
    hint = typing.get_type_hints(endpoint, include_extras=True)["q"]
    model = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{endpoint.__name__}: q must be Annotated[<pydantic model>, Query()]")
    return model


def _list_params(model: type[BaseModel]) -> frozenset[str]:
    out = set()
    for name, f in model.model_fields.items():
        ann = f.annotation
        args = typing.get_args(ann) if typing.get_origin(ann) is not list else (ann,)
        if any(typing.get_origin(a) is list for a in args):
            out.add(f.alias or name)
    return frozenset(out)


class DirectRoutes:
    """Serves the GET routes marked :func:`direct`; passes every other request on."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._table: dict[str, _Route] | None = None

    def table(self) -> dict[str, _Route]:
        """Path → route, built at the first request (every router is included by then); the
        paths are also kept in ``app.state.direct_paths`` for tests and operators."""
        if self._table is None:
            got: dict[str, _Route] = {}
            for rc in iter_route_contexts(self.api.routes):
                route = rc.route
                if not isinstance(route, APIRoute) or not getattr(route.endpoint, _MARK, False):
                    continue
                if rc.methods != {"GET"} or "{" in rc.path:
                    raise TypeError(f"{rc.path}: a direct route is a GET on a fixed path")
                model = _query_model(route.endpoint)
                got[rc.path] = _Route(route, model, _list_params(model))
            self._table = got
            self.api.state.direct_paths = frozenset(got)
        return self._table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            hit = self.table().get(path)
            if hit is not None:
                await self._serve(hit, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, hit: _Route, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = hit.route
        request = Request(scope, receive)
        try:
            settings = self.api.state.settings
            if settings.storefront_api_key is not None:
                check_storefront_key(settings, header_key(request.headers))
            ctx = await storefront(request)
            response = await hit.route.endpoint(self._query(hit, request), ctx)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # the server-error middleware outside answers 500, as for any route
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    @staticmethod
    def _query(hit: _Route, request: Request) -> BaseModel:
        """The query string validated by the route's model, as FastAPI reads a query model:
        repeated values for list fields, the last value otherwise."""
        data: dict[str, Any] = {}
        for k, v in request.query_params.multi_items():
            if k in hit.lists:
                data.setdefault(k, []).append(v)
            else:
                data[k] = v
        try:
            return hit.model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        """The app's handler for ``exc`` as Starlette's exception middleware picks it (by
        status code for HTTP exceptions, then by class); None for the 500 handler."""
        handlers = self.api.exception_handlers
        if (
            isinstance(exc, StarletteHTTPException)
            and exc.status_code != 500
            and exc.status_code in handlers
        ):
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None
