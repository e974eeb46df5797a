"""Typed dependencies: keep route signatures one line long.

API keys are sent as ``X-API-Key: <key>`` (or ``Authorization: Bearer <key>``):

* admin routes (catalog, users, models, rules, experiments, reports, console) need
  ``settings.admin_api_key``; when none is configured they are refused (403) — never open;
* storefront routes (recommendations, feed, items, trending, search, events) need
  ``settings.storefront_api_key`` or the admin key when a storefront key is configured, and
  are open otherwise.

Keys are compared in constant time and never logged.

One typed dependency per resource (``CatalogDep``, ``PipelineDep``, ``ProfilesDep``,
``RulesDep``, ``ExperimentsDep``, ``SettingsDep``) and per use case (``ProductSearchDep``,
``RulePreviewDep``, ``ReportsDep``, ``ModelAdminDep``, ``EventIngestDep``,
``CatalogWritesDep``, ``UsersDep``: ``serving.usecases``): a route names what
it uses and never reaches into :class:`serving.state.Services`. Those that only read
attributes are ``async`` (answered on the event loop); the merchandising ones are plain
functions (FastAPI runs them in its thread pool: the first call opens the SQLite stores) that
the CLI and benches call directly with the app's services.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter

from analytics.search_log import SearchLog
from core.settings import Settings
from data.catalog import Catalog
from merch.experiments import ExperimentService
from merch.request_log import RequestLog
from merch.rules.service import RuleService
from models.registry import Registry
from ranking.pipeline import Pipeline
from ranking.store_profiles import StoreProfiles
from serving.errors import Forbidden, Unauthorized
from serving.feed_pages import StoreRankedLists
from serving.merch import merch, preview_ranker, read_events_table, recent_events
from serving.services import erase_user
from serving.state import Services
from serving.strict import StrictTypes
from serving.usecases.catalog import CatalogWrites
from serving.usecases.events import EventIngest
from serving.usecases.models import ModelAdmin
from serving.usecases.preview import RulePreviewer
from serving.usecases.reports import Reports
from serving.usecases.search import ProductSearch
from serving.usecases.users import Users

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Admin or storefront API key."
)
_bearer = HTTPBearer(auto_error=False, description="The same key as a bearer token.")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_request_id(request: Request) -> str:
    return request.state.request_id  # type: ignore[no-any-return]


RequestIdDep = Annotated[str, Depends(get_request_id)]


# ---------------------------------------------------------------------------- storefront parts
async def get_catalog(services: ServicesDep) -> Catalog:
    return services.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def get_pipeline(services: ServicesDep) -> Pipeline:
    return services.pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


async def get_profiles(services: ServicesDep) -> StoreProfiles:
    return services.profiles


ProfilesDep = Annotated[StoreProfiles, Depends(get_profiles)]


async def get_product_search(services: ServicesDep) -> ProductSearch:
    return ProductSearch(
        backend=services.search, pipeline=services.pipeline, rules=services.rules,
        catalog=services.catalog, settings=services.settings,
        log=services.search_log,
    )


ProductSearchDep = Annotated[ProductSearch, Depends(get_product_search)]


async def get_model_admin(services: ServicesDep) -> ModelAdmin:
    return ModelAdmin(Registry(services.settings.models_dir), services, services.pipeline.learned)


ModelAdminDep = Annotated[ModelAdmin, Depends(get_model_admin)]


async def get_event_ingest(request: Request, services: ServicesDep) -> EventIngest:
    metrics = getattr(request.app.state, "metrics", None)
    return EventIngest(services.seen_events, services.events, services.record_events,
                       metrics.events_accepted.inc if metrics is not None else None)


EventIngestDep = Annotated[EventIngest, Depends(get_event_ingest)]


async def get_catalog_writes(services: ServicesDep) -> CatalogWrites:
    return CatalogWrites(
        catalog=services.catalog,
        store=lambda up, dels: services.catalog_written(upserted=up, deleted=dels),
        upserted=services.catalog_upserted, deleted=services.catalog_deleted,
        search=services.search, retry=services.index_retry,
    )


CatalogWritesDep = Annotated[CatalogWrites, Depends(get_catalog_writes)]


async def get_users(services: ServicesDep) -> Users:
    return Users(services.profiles, services.users.upsert, partial(erase_user, services))


UsersDep = Annotated[Users, Depends(get_users)]


# ---------------------------------------------------------------------------- merchandising
def get_rules(services: ServicesDep) -> RuleService:
    return merch(services).rules


RulesDep = Annotated[RuleService, Depends(get_rules)]


def get_experiments(services: ServicesDep) -> ExperimentService:
    return merch(services).experiments


ExperimentsDep = Annotated[ExperimentService, Depends(get_experiments)]


def get_request_log(services: ServicesDep) -> RequestLog:
    return merch(services).requests



def get_search_log(services: ServicesDep) -> SearchLog | None:
    """The search log, opened with the merchandising services; None when there is none
    (the reports that need it answer 503)."""
    merch(services)
    return services.search_log



def get_reports(services: ServicesDep) -> Reports:
    m = merch(services)
    events = partial(read_events_table, services)
    return Reports(services.catalog, m.experiments, m.requests, events, get_search_log(services))


ReportsDep = Annotated[Reports, Depends(get_reports)]


def get_rule_previewer(services: ServicesDep) -> RulePreviewer:
    """The rule preview over the app's stores, pipeline and merchandising services."""
    m = merch(services)
    return RulePreviewer(
        rules=m.rules,
        catalog=services.catalog,
        profiles=services.profiles,
        ranker=lambda k: preview_ranker(services, k=k),
        recent_events=lambda n: recent_events(services, n),
        requests=m.requests,
    )


RulePreviewDep = Annotated[RulePreviewer, Depends(get_rule_previewer)]


def _presented_key(header: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if header:
        return header
    if bearer is not None and bearer.credentials:
        return bearer.credentials
    return None


def _matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def require_admin(
    services: ServicesDep,
    header: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    expected = services.settings.admin_api_key
    if expected is None:
        raise Forbidden(
            "admin routes are disabled: set SHOPRANK_ADMIN_API_KEY (e.g. `openssl rand -hex 24`)",
            field="X-API-Key",
        )
    key = _presented_key(header, bearer)
    if key is None:
        raise Unauthorized(
            "X-API-Key: missing; send the admin API key in the X-API-Key header", field="X-API-Key"
        )
    if not _matches(key, expected.get_secret_value()):
        raise Forbidden("X-API-Key: not the admin API key", field="X-API-Key")


def header_key(headers: Mapping[str, str]) -> str | None:
    """The key of ``X-API-Key`` or of ``Authorization: Bearer …`` (the header wins), read as
    :func:`require_storefront_key` reads it (for :mod:`serving.direct`)."""
    key = headers.get("x-api-key")
    if key:
        return key
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def check_storefront_key(settings: Settings, key: str | None) -> None:
    """Nothing when no storefront key is configured or ``key`` is the storefront or the admin
    key; else 401 (missing) or 403 (wrong)."""
    if settings.storefront_api_key is None:
        return
    if key is None:
        raise Unauthorized(
            "X-API-Key: missing; send the storefront API key in the X-API-Key header",
            field="X-API-Key",
        )
    if _matches(key, settings.storefront_api_key.get_secret_value()):
        return
    if settings.admin_api_key is not None and _matches(
        key, settings.admin_api_key.get_secret_value()
    ):
        return
    raise Forbidden("X-API-Key: not a valid storefront or admin API key", field="X-API-Key")


async def require_storefront_key(
    request: Request,
    header: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    settings: Settings = request.app.state.settings
    check_storefront_key(settings, _presented_key(header, bearer))


@dataclass(frozen=True, slots=True)
class Storefront:
    """What a hot storefront route needs, from one dependency (a ``@direct`` route takes
    exactly ``q`` and ``ctx``, see ``serving.direct``): the pipeline, the catalog and the request
    id. The storefront key, when one is configured, is checked by :data:`StorefrontKeyDep`,
    which ``create_app`` puts on the storefront routers."""

    services: Services
    request_id: str

    @property
    def pipeline(self) -> Pipeline:
        return self.services.pipeline

    @property
    def catalog(self) -> Catalog:
        return self.services.catalog

    @property
    def feed_pages(self) -> StoreRankedLists:
        """Ranked feeds between pages (``serving.feed_pages``)."""
        return self.services.feed_cache


async def storefront(request: Request) -> Storefront:
    services: Services = request.app.state.services
    return Storefront(services, request.state.request_id)


StorefrontCtx = Annotated[Storefront, Depends(storefront)]
"""A hot storefront route's one dependency: ``ctx: StorefrontCtx`` (pipeline, catalog, request
id)."""


_STRICT_ATTR = "shoprank_strict_types"


def _strict_types(route: object) -> StrictTypes | None:
    """The checker of the route's JSON body (None: the route takes none), kept on the route."""
    if not hasattr(route, _STRICT_ATTR):
        field = getattr(route, "body_field", None)
        checker = None if field is None else StrictTypes(
            TypeAdapter(field.field_info.annotation).json_schema()
        )
        setattr(route, _STRICT_ATTR, checker)
    return getattr(route, _STRICT_ATTR, None)


async def strict_json_body(request: Request) -> None:
    """Refuse a JSON body holding a value of the wrong JSON kind for its place in the
    schema (``"consent": 0``, ``"rating": false``, ``"created_at": 0``), with the 422 naming the
    field, before pydantic's lax mode would convert it (see :mod:`serving.strict`)."""
    if request.method in ("GET", "HEAD", "DELETE"):
        return
    checker = _strict_types(request.scope.get("route"))
    if checker is None or "json" not in request.headers.get("content-type", ""):
        return
    try:
        body = await request.json()  # already parsed by FastAPI for the route: cached
    except ValueError:
        return  # FastAPI answers malformed JSON itself
    errors = [
        {"type": f"{expected.split(' or ')[0]}_type", "loc": ("body", *loc), "input": None,
         "msg": f"Input should be {expected}, not {given}"}
        for loc, expected, given in checker.errors(body)
    ]
    if errors:
        raise RequestValidationError(errors)


StrictBodyDep = Depends(strict_json_body)
"""On the routers that take a JSON body (``create_app``)."""

AdminDep = Depends(require_admin)
"""Use as ``APIRouter(dependencies=[AdminDep])``."""

StorefrontKeyDep = Security(require_storefront_key)
"""On the storefront routers when a storefront key is configured (``create_app``): the key
is then checked and declared in OpenAPI; without one the routes are open and declare none."""
