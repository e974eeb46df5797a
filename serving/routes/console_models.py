"""The console's models page (``/console/models``): versions per model with promote and
rollback."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from analytics.model_history import console_view
from core.errors import ShopRankError, describe
from serving.routes.console import (
    ConsoleDep,
    CsrfDep,
    form_value,
    page,
    read_form,
    see_other,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("/models")
def models_page(
    services: ConsoleDep, csrf: CsrfDep, error: str = "", done: str = ""
) -> HTMLResponse:
    models: list[dict[str, Any]] = []
    try:
        from serving.routes.models import list_models

        models = list_models(services, "console").model_dump()["models"]
    except ShopRankError as exc:
        error = error or str(exc)
    except ImportError:
        error = error or "the model registry is not available in this build"
    history_svg, runs = console_view(services.settings.models_dir)
    return page(
        "models.html",
        csrf=csrf,
        active="models",
        models=models,
        error=error,
        done=done,
        serving=services.models.versions,
        history_svg=history_svg,
        runs=runs,
    )


@router.post("/models/{name}/{action}")
async def model_action(name: str, action: str, request: Request, services: ConsoleDep) -> Response:
    from serving.routes.models import promote, rollback
    from serving.schemas import PromoteIn

    f = await read_form(request)
    try:
        if action == "promote":
            out = promote(name, PromoteIn(version=form_value(f, "version")), services, "console")
        elif action == "rollback":
            out = rollback(name, services, "console")
        else:
            return Response("unknown action", status_code=404)
    except (ShopRankError, ValidationError) as exc:
        msg = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        return see_other("/console/models?" + urlencode({"error": msg}))
    return see_other(
        "/console/models?" + urlencode({"done": f"{name} now at {out.current_version}"})
    )
