"""Models (admin): list versions, promote, roll back, reload — over the registry.

Promote and rollback move the registry's ``current`` pointer (atomic, verified) and then
reload at once, so the answer shows the versions now serving. Other API processes pick the
change up through their watcher within ``model_poll_seconds``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from serving.deps import AdminDep, ModelAdminDep, RequestIdDep
from serving.errors import DocumentedRoute, error_responses
from serving.schemas import ModelChangeOut, ModelsOut, PromoteIn, ReloadOut

router = APIRouter(
    prefix="/v1/models", tags=["models"], dependencies=[AdminDep], route_class=DocumentedRoute
)

NamePath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9_][a-z0-9_-]*$")]


@router.get("", response_model=ModelsOut, summary="Models, their versions and what is serving")
def list_models(models: ModelAdminDep, request_id: RequestIdDep) -> ModelsOut:
    return ModelsOut(request_id=request_id, models=models.list())


@router.post(
    "/{name}/promote",
    response_model=ModelChangeOut,
    summary="Promote a version and serve it",
    responses=error_responses(409),  # a version that cannot be loaded is not promoted
)
def promote(
    name: NamePath, body: PromoteIn, models: ModelAdminDep, request_id: RequestIdDep
) -> ModelChangeOut:
    current = models.promote(name, body.version)
    return ModelChangeOut(
        request_id=request_id, name=name, current_version=current, serving=models.versions
    )


@router.post(
    "/{name}/rollback",
    response_model=ModelChangeOut,
    summary="Go back to the previous version",
    responses=error_responses(409),
)
def rollback(name: NamePath, models: ModelAdminDep, request_id: RequestIdDep) -> ModelChangeOut:
    current = models.rollback(name)
    return ModelChangeOut(
        request_id=request_id, name=name, current_version=current, serving=models.versions
    )


@router.post(
    "/reload", response_model=ReloadOut, summary="Load the registry's current versions now"
)
def reload(models: ModelAdminDep, request_id: RequestIdDep) -> ReloadOut:
    changed = models.reload()
    return ReloadOut(request_id=request_id, changed=changed, serving=models.versions)
