"""Operations: liveness, readiness and Prometheus metrics (no API key: keep them internal)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.deps import CatalogDep, ModelAdminDep, ProductSearchDep
from serving.errors import DocumentedRoute
from serving.schemas import HealthOut, ReadyOut

router = APIRouter(route_class=DocumentedRoute, tags=["ops"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
async def healthz() -> HealthOut:
    # async: answered on the event loop, not through the thread pool (a sync route's hop
    # there and back was most of its 0.5 ms), so under load it measures the HTTP floor
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness: models loaded and search reachable",
    responses={
        503: {"model": ReadyOut, "description": "Not ready; `checks` says what is missing."}
    },
)
def readyz(catalog: CatalogDep, models: ModelAdminDep, search: ProductSearchDep) -> JSONResponse:
    checks = {
        "catalog": len(catalog) > 0,
        "models": models.ready(),
        "search": search.healthy(),
    }
    body = ReadyOut(ready=all(checks.values()), checks=checks, models=models.versions)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, catalog: CatalogDep, models: ModelAdminDep) -> Response:
    m = request.app.state.metrics
    m.set_models(models.versions)
    m.catalog_items.set(len(catalog))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
