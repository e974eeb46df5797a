"""Operations: liveness, readiness and Prometheus metrics (no API key: keep them internal)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from models.registry import current_versions
from ranking.modelset import NOT_RECOMMENDERS
from serving.deps import ServicesDep
from serving.errors import DocumentedRoute
from serving.schemas import HealthOut, ReadyOut
from serving.state import Services

router = APIRouter(route_class=DocumentedRoute, tags=["ops"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
async def healthz() -> HealthOut:
    # async: answered on the event loop, not through the thread pool (a sync route's hop
    # there and back was most of its 0.5 ms), so under load it measures the HTTP floor
    return HealthOut(status="ok")


def _promoted_are_serving(services: Services) -> bool:
    """Every version the registry calls current is the one this process serves (a promoted
    version that failed to load, or a model missing at start-up, makes it not ready)."""
    try:
        promoted = current_versions(services.settings.models_dir)
    except Exception:  # an unreadable registry: what serves is all there is
        return True
    serving = services.models.versions
    learned = services.pipeline.learned  # the ranker: loaded by its own stage
    if learned is not None and not learned.serving_ok():
        return False
    return all(serving.get(name) == version for name, version in promoted.items()
               if name not in NOT_RECOMMENDERS)


@router.get(
    "/readyz",
    response_model=ReadyOut,
    summary="Readiness: models loaded and search reachable",
    responses={
        503: {"model": ReadyOut, "description": "Not ready; `checks` says what is missing."}
    },
)
def readyz(services: ServicesDep) -> JSONResponse:
    search_ok = False
    if services.search is not None:
        try:
            search_ok = bool(services.search.health())
        except Exception:  # an unreachable backend is "not ready", not an error
            search_ok = False
    checks = {
        "catalog": len(services.catalog) > 0,
        "models": len(services.models) > 0 and _promoted_are_serving(services),
        "search": search_ok,
    }
    body = ReadyOut(ready=all(checks.values()), checks=checks, models=services.models.versions)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request, services: ServicesDep) -> Response:
    m = request.app.state.metrics
    m.set_models(services.models.versions)
    m.catalog_items.set(len(services.catalog))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
