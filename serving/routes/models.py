"""Models (admin): list versions, promote, roll back, reload — over the registry.

Promote and rollback move the registry's ``current`` pointer (atomic, verified) and then
reload at once, so the answer shows the versions now serving. Other API processes pick the
change up through their watcher within ``model_poll_seconds``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from serving.deps import AdminDep, RequestIdDep, ServicesDep
from serving.errors import DocumentedRoute, NotFound, error_responses
from serving.schemas import (
    ModelChangeOut,
    ModelOut,
    ModelsOut,
    ModelVersionOut,
    PromoteIn,
    ReloadOut,
)
from serving.state import Services

router = APIRouter(
    prefix="/v1/models", tags=["models"], dependencies=[AdminDep], route_class=DocumentedRoute
)

NamePath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_][a-z0-9_-]*$")]


def _registry(services: Services):  # type: ignore[no-untyped-def]
    from models.registry import Registry

    return Registry(services.settings.models_dir)


def _check_name(services: Services, name: str) -> None:
    if name not in _registry(services).names():
        raise NotFound(f"name: no model named {name!r} in the registry", field="name")


@router.get("", response_model=ModelsOut, summary="Models, their versions and what is serving")
def list_models(services: ServicesDep, request_id: RequestIdDep) -> ModelsOut:
    reg = _registry(services)
    serving = services.models.versions
    by_name: dict[str, list[ModelVersionOut]] = {}
    for row in reg.list():
        by_name.setdefault(row["name"], []).append(
            ModelVersionOut(
                version=row["version"],
                current=bool(row["current"]),
                serving=serving.get(row["name"]) == row["version"],
                created_at=row.get("created_at") or None,
                metrics={k: float(v) for k, v in (row.get("metrics") or {}).items()},
            )
        )
    return ModelsOut(
        request_id=request_id,
        models=[
            ModelOut(
                name=name,
                current_version=reg.current_version(name),
                serving_version=serving.get(name),
                versions=versions,
            )
            for name, versions in sorted(by_name.items())
        ],
    )


@router.post(
    "/{name}/promote",
    response_model=ModelChangeOut,
    summary="Promote a version and serve it",
    responses=error_responses(409),  # a version that cannot be loaded is not promoted
)
def promote(
    name: NamePath, body: PromoteIn, services: ServicesDep, request_id: RequestIdDep
) -> ModelChangeOut:
    _check_name(services, name)
    reg = _registry(services)
    if body.version not in reg.versions(name):
        raise NotFound(f"version: {name} has no version {body.version!r}", field="version")
    current = reg.promote(name, body.version)
    services.reload_models()
    return ModelChangeOut(
        request_id=request_id, name=name, current_version=current, serving=services.models.versions
    )


@router.post(
    "/{name}/rollback",
    response_model=ModelChangeOut,
    summary="Go back to the previous version",
    responses=error_responses(409),
)
def rollback(name: NamePath, services: ServicesDep, request_id: RequestIdDep) -> ModelChangeOut:
    _check_name(services, name)
    current = _registry(services).rollback(name)
    services.reload_models()
    return ModelChangeOut(
        request_id=request_id, name=name, current_version=current, serving=services.models.versions
    )


@router.post(
    "/reload", response_model=ReloadOut, summary="Load the registry's current versions now"
)
def reload(services: ServicesDep, request_id: RequestIdDep) -> ReloadOut:
    changed = services.reload_models()
    return ReloadOut(request_id=request_id, changed=changed, serving=services.models.versions)
