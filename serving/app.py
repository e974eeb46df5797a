"""The FastAPI application: ``create_app(settings, services=None)``.

Nothing is built at import time. ``create_app`` wires error handlers, the request-id /
metrics middleware and the routers; the services (catalog, models, search, event log, …) are
built on start-up unless a test passes pre-built :class:`serving.state.Services`.

Adding a router (rules, experiments, reports, console): create ``serving/routes/<name>.py``
exposing ``router = APIRouter(prefix="/v1/<name>", tags=[...], dependencies=[AdminDep])`` and
add its module name to :data:`ROUTERS` — one line. Modules listed there but not present in the
build are skipped, so a router can be listed before it lands.

Run it with ``shoprank serve`` or ``uvicorn --factory serving.app:app_factory``.
"""

from __future__ import annotations

import gc
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from core.settings import Settings, get_settings
from serving.deps import document_storefront_security
from serving.direct import DirectRoutes
from serving.errors import SafeJSONResponse, install_error_handlers
from serving.limits import BodyLimitMiddleware
from serving.metrics import Metrics, ObservabilityMiddleware
from serving.state import ModelWatcher, Services

log = logging.getLogger(__name__)

ROUTERS: tuple[str, ...] = (
    "ops",
    "recommendations",
    "feed",
    "items",
    "trending",
    "search",
    "events",
    "catalog",
    "users",
    "models",
    # merchandising (optional until they land)
    "rules",
    "experiments",
    "reports",
    "console",
)
"""Modules under ``serving.routes``, each exposing ``router``."""

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
    """The app; ``direct_routes=False`` leaves every route to FastAPI's own dispatch (tests
    compare the two, see :mod:`serving.direct`)."""
    settings = settings or (services.settings if services is not None else get_settings())
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One BLAS thread per worker: requests are the parallelism, and a second BLAS thread
        # per request only fights for the same cores (a 10x slower dot product under load).
        from threadpoolctl import threadpool_limits

        app.state.blas_limits = threadpool_limits(limits=1, user_api="blas")
        svc = services if services is not None else Services.build(settings)
        # What start-up built (catalog, models, profiles) lives as long as the process: keep
        # it out of the garbage collector's full passes, which would otherwise walk it again
        # and again (long pauses in the latency tail).
        gc.collect()
        gc.freeze()
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
    routers = []
    for name in ROUTERS:
        try:
            module = importlib.import_module(f"serving.routes.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"serving.routes.{name}":
                continue
            raise
        app.include_router(module.router)
        routers.append(module.router)
    document_storefront_security(app, routers)
    if direct_routes:
        app.add_middleware(DirectRoutes, api=app)
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def app_factory() -> FastAPI:
    """For ``uvicorn --factory serving.app:app_factory`` (settings from the environment)."""
    return create_app(get_settings())
