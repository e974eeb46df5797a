"""Typed dependencies: keep route signatures one line long.

API keys are sent as ``X-API-Key: <key>`` (or ``Authorization: Bearer <key>``):

* admin routes (catalog, users, models, rules, experiments, reports, console) need
  ``settings.admin_api_key``; when none is configured they are refused (403) — never open;
* storefront routes (recommendations, feed, items, trending, search, events) need
  ``settings.storefront_api_key`` or the admin key when a storefront key is configured, and
  are open otherwise.

Keys are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from recsys.pipeline import Pipeline
from serving.errors import Forbidden, Unauthorized
from serving.settings import Settings
from serving.state import Services

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="Admin or storefront API key.")
_bearer = HTTPBearer(auto_error=False, description="The same key as a bearer token.")


async def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_pipeline(services: ServicesDep) -> Pipeline:
    return services.pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


async def get_request_id(request: Request) -> str:
    return request.state.request_id  # type: ignore[no-any-return]


RequestIdDep = Annotated[str, Depends(get_request_id)]


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
        raise Unauthorized("X-API-Key: missing; send the admin API key in the X-API-Key header", field="X-API-Key")
    if not _matches(key, expected.get_secret_value()):
        raise Forbidden("X-API-Key: not the admin API key", field="X-API-Key")


async def require_storefront(
    services: ServicesDep,
    header: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    s = services.settings
    if s.storefront_api_key is None:
        return
    key = _presented_key(header, bearer)
    if key is None:
        raise Unauthorized(
            "X-API-Key: missing; send the storefront API key in the X-API-Key header", field="X-API-Key"
        )
    if _matches(key, s.storefront_api_key.get_secret_value()):
        return
    if s.admin_api_key is not None and _matches(key, s.admin_api_key.get_secret_value()):
        return
    raise Forbidden("X-API-Key: not a valid storefront or admin API key", field="X-API-Key")


AdminDep = Depends(require_admin)
"""Use as ``APIRouter(dependencies=[AdminDep])``."""
StorefrontDep = Depends(require_storefront)
