"""The FastAPI application: ``create_app(settings, services=None)``.

Nothing is built at import time. ``create_app`` wires error handlers, the request-id /
metrics middleware and the routers; the services (catalog, models, search, event log, …) are
built on start-up unless a test passes pre-built :class:`serving.state.Services`.

Adding a router: create ``serving/routes/<name>.py`` exposing ``router = APIRouter(prefix=
"/v1/<name>", tags=[...], dependencies=[AdminDep])``, import it here and add it to
:func:`_routers` with the error statuses its routes answer (documented in OpenAPI with the
error body, :class:`serving.errors.ErrorOut`).

Run it with ``shoprank serve`` or ``uvicorn --factory serving.app:app_factory``.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.params import Depends

from core.memory import limit_malloc_arenas, release_free_heap
from core.settings import Settings, get_settings
from serving.balance import ENV as WORKERS_ENV
from serving.balance import WorkerLoads
from serving.cpus import pin_worker
from serving.deps import AdminDep, StorefrontKeyDep, StrictBodyDep
from serving.direct import DirectRoutes
from serving.errors import SafeJSONResponse, error_responses, install_error_handlers
from serving.keepalive import KeepAliveLimit
from serving.limits import BodyLimitMiddleware
from serving.metrics import Metrics, ObservabilityMiddleware
from serving.routes import (
    catalog,
    console,
    console_experiments,
    console_models,
    console_overview,
    console_rules,
    console_search,
    events,
    experiments,
    feed,
    items,
    model_runs,
    models,
    ops,
    recommendations,
    reports,
    rules,
    search,
    search_reports,
    segments,
    trending,
    users,
)
from serving.state import ModelWatcher, Services

log = logging.getLogger(__name__)

_ADMIN = (400, 401, 403, 503)
"""What every admin route may answer besides what its inputs allow (serving.errors.
DocumentedRoute): a library's refusal, a missing or wrong key (or admin routes disabled), a
store that cannot answer."""


def _routers(settings: Settings) -> list[tuple[APIRouter, Sequence[Depends], tuple[int, ...]]]:
    """(router, dependencies added at inclusion, error statuses every route of it may
    answer), in the order they are matched. Storefront routers take the key check only when
    a storefront key is configured: open by default, and their OpenAPI declares security only
    then. Statuses that follow from a route's inputs are its own (``DocumentedRoute``)."""
    keyed = settings.storefront_api_key is not None
    key: list[Depends] = [StorefrontKeyDep] if keyed else []
    # routers with JSON bodies: strict JSON types (serving.deps), checked after the key (an
    # admin router's own AdminDep is repeated first here; FastAPI runs it once per request).
    # Not events: each event is validated on its own, a bad one rejected alone.
    admin_body = [AdminDep, StrictBodyDep]
    storefront = (503, 401, 403) if keyed else (503,)
    return [
        (ops.router, [], ()),
        (recommendations.router, key, storefront),
        (feed.router, key, storefront),
        (items.router, key, storefront),
        (trending.router, key, storefront),
        (search.router, [*key, StrictBodyDep], storefront),
        (events.router, key, storefront),
        (catalog.router, admin_body, _ADMIN),
        (users.router, admin_body, _ADMIN),
        (model_runs.router, [], _ADMIN),
        (models.router, admin_body, _ADMIN),
        (rules.router, admin_body, _ADMIN),
        (experiments.router, admin_body, _ADMIN),
        (reports.router, [], _ADMIN),
        (search_reports.router, [], _ADMIN),
        (console.router, [], ()),
        (console_search.router, [], ()),
        (console_rules.router, [], ()),
        (console_experiments.router, [], ()),
        (console_models.router, [], ()),
        (segments.router, [], _ADMIN),
        (console_overview.router, [], ()),
    ]


API_DESCRIPTION = """Personalized recommendations and product search for e-commerce.

Every list item carries a `score` and `reasons`; `debug=true` adds the score `breakdown`.
Every response carries a `request_id` (also the `X-Request-ID` header): send it back in
events (`context.request_id`) so clicks and purchases are attributed to what was shown.

Admin routes need the admin key in `X-API-Key`; storefront routes need the storefront key
when one is configured."""


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    direct_routes: bool = True,
) -> FastAPI:
    """The app for ``settings`` (default: the services' settings, else the environment's);
    ``direct_routes=False`` leaves every route to FastAPI's own dispatch (tests compare the
    two, see :mod:`serving.direct`)."""
    settings = settings or (services.settings if services is not None else get_settings())
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One BLAS thread per worker: requests are the parallelism, and a second BLAS thread
        # per request only fights for the same cores (a 10x slower dot product under load).
        from threadpoolctl import threadpool_limits

        app.state.blas_limits = threadpool_limits(limits=1, user_api="blas")
        # Before the services start their threads: all threads share a few malloc arenas,
        # so the worker's heap stops growing once its working set is reached.
        limit_malloc_arenas(settings.malloc_arenas)
        workers_dir = os.environ.get(WORKERS_ENV)
        if settings.pin_workers and workers_dir:
            pin_worker(Path(workers_dir))
        svc = services if services is not None else Services.build(settings)
        # What start-up built (catalog, models, profiles) lives as long as the process: keep
        # it out of the garbage collector's full passes, which would otherwise walk it again
        # and again (long pauses in the latency tail).
        gc.collect()
        gc.freeze()
        # start-up's transient memory (the catalog's bodies as read, the models' loading)
        # is free now: give its pages back (at 1M users × 100k items, 138 MB a worker)
        release_free_heap()
        app.state.services = svc
        metrics.set_models(svc.models.versions)
        watcher = None
        if settings.model_poll_seconds > 0:
            watcher = ModelWatcher(svc, settings.model_poll_seconds, on_change=metrics.set_models)
            watcher.start()
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            if services is None:
                svc.close()
            metrics.close()

    app = FastAPI(
        title="shoprank",
        version="1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.state.metrics = metrics
    app.state.settings = settings
    if services is not None:
        app.state.services = services
    install_error_handlers(app)
    for router, dependencies, statuses in _routers(settings):
        responses: dict[int | str, dict[str, Any]] = error_responses(*statuses)
        app.include_router(router, dependencies=dependencies, responses=responses)
    if direct_routes:
        app.add_middleware(DirectRoutes, api=app)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    # the workers of one `shoprank serve --workers N` even out their connections
    app.add_middleware(KeepAliveLimit, max_requests=settings.keep_alive_requests,
                       loads=WorkerLoads.from_env())
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory serving.app:app_factory`` (settings from the environment)."""
    return create_app(get_settings())
