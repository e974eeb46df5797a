"""Hot storefront GET routes called without FastAPI's per-request routing and dependencies.

FastAPI 0.165 walks the included routers twice per request (once to match, once to handle)
and then solves the route's dependencies. On ``/v1/recommendations`` under load that is
0.2–0.25 ms of a 1.5–1.7 ms request (one worker; measured by serving the same endpoint both
ways). A route opts in with :func:`direct` when its endpoint is ``async``, takes exactly
``(request: Request, ctx: StorefrontCtx)`` and returns a ``Response``. :class:`DirectRoutes`,
an ASGI middleware inside the metrics one, then calls it itself: the same storefront key
check (:func:`serving.deps.storefront`), the same exception handlers, ``scope["route"]`` set
for the metrics. The route stays declared in FastAPI, which documents it in OpenAPI and
answers every other method on its path.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.deps import storefront

Endpoint = Callable[..., Awaitable[Response]]

_MARK = "__shoprank_direct__"


def _api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every APIRoute of the app, through the included routers (recent FastAPI keeps them
    nested; older versions had a flat ``app.routes``)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        routes: Iterable[Any] = app.routes
    else:
        routes = (rc.route for rc in iter_route_contexts(app.routes))
    for route in routes:
        if isinstance(route, APIRoute):
            yield route


def direct(endpoint: Endpoint) -> Endpoint:
    """Mark a storefront GET endpoint for :class:`DirectRoutes` (put it under ``@router.get``)."""
    params = list(inspect.signature(endpoint).parameters)
    if not inspect.iscoroutinefunction(endpoint) or params != ["request", "ctx"]:
        raise TypeError(f"{endpoint.__name__}: a direct route is `async def f(request, ctx)`")
    setattr(endpoint, _MARK, True)
    return endpoint


class DirectRoutes:
    """Serves the GET routes marked :func:`direct` on static paths; passes the rest on."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._table: dict[str, APIRoute] | None = None

    def table(self) -> dict[str, APIRoute]:
        """Path → route, built at the first request (every router is included by
        then); also kept in ``app.state.direct_paths`` for tests and operators."""
        if self._table is None:
            got: dict[str, APIRoute] = {}
            for route in _api_routes(self.api):
                if not getattr(route.endpoint, _MARK, False):
                    continue
                deps = [d.call for d in route.dependant.dependencies]
                if route.methods != {"GET"} or route.param_convertors or deps != [storefront]:
                    raise TypeError(f"{route.path}: a direct route is a GET on a fixed path whose "
                                    "only dependency is the storefront context")
                got[route.path] = route
            self._table = got
            self.api.state.direct_paths = frozenset(got)
        return self._table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            route = self.table().get(path)
            if route is not None:
                await self._serve(route, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, route: APIRoute, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request, await storefront(request))
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # the server-error middleware outside answers 500, as for any route
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

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
