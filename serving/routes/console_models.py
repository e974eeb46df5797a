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
from serving.deps import ModelAdminDep
from serving.routes.console import (
    ConsoleDep,
    CsrfDep,
    form_value,
    page,
    read_form,
    see_other,
)
from serving.schemas import PromoteIn

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[ConsoleDep])


@router.get("/models")
def models_page(
    models: ModelAdminDep, csrf: CsrfDep, error: str = "", done: str = ""
) -> HTMLResponse:
    listed: list[dict[str, Any]] = []
    try:
        listed = [m.model_dump() for m in models.list()]
    except ShopRankError as exc:
        error = error or str(exc)
    history_svg, runs = console_view(models.registry.root)
    return page(
        "models.html",
        csrf=csrf,
        active="models",
        models=listed,
        error=error,
        done=done,
        serving=models.versions,
        history_svg=history_svg,
        runs=runs,
    )


@router.post("/models/{name}/{action}")
async def model_action(name: str, action: str, request: Request, models: ModelAdminDep) -> Response:
    f = await read_form(request)
    try:
        if action == "promote":
            version = PromoteIn(version=form_value(f, "version")).version
            current = models.promote(name, version)
        elif action == "rollback":
            current = models.rollback(name)
        else:
            return Response("unknown action", status_code=404)
    except (ShopRankError, ValidationError) as exc:
        msg = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        return see_other("/console/models?" + urlencode({"error": msg}))
    return see_other("/console/models?" + urlencode({"done": f"{name} now at {current}"}))
