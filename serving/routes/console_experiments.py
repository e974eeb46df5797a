"""The console's experiments pages (``/console/experiments``): the list, the create form,
start/stop/delete, and one experiment's results with charts."""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from analytics.charts import inline_svg, variant_chart
from analytics.statistics import METRICS
from core.errors import ShopRankError, describe
from merch.experiments import ExperimentSpec, experiment_as_dict
from serving.deps import ExperimentsDep, ReportsDep
from serving.routes.console import (
    ConsoleDep,
    CsrfDep,
    form_value,
    page,
    read_form,
    see_other,
    split_items,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False, dependencies=[ConsoleDep])


def _weights(text: str) -> dict[str, float]:
    """'for_you=1, trending=0.1' → {'for_you': 1.0, 'trending': 0.1}"""
    out: dict[str, float] = {}
    for part in split_items(text):
        name, _, value = part.partition("=")
        if not value:
            raise ValueError(f"blend weights: write name=weight, got {part!r}")
        out[name.strip()] = float(value)
    return out


@router.get("/experiments")
def experiments_page(experiments: ExperimentsDep, csrf: CsrfDep, error: str = "") -> HTMLResponse:
    exps = [experiment_as_dict(e) for e in experiments.list()]
    return page(
        "experiments.html", csrf=csrf, active="experiments", experiments=exps, error=error, v={}
    )


@router.post("/experiments")
async def create_experiment(
    request: Request, experiments: ExperimentsDep, csrf: CsrfDep
) -> Response:
    f = await read_form(request)
    values = {k: v[0] for k, v in f.items()}
    try:
        variants = []
        for tag in ("a", "b"):
            ov: dict[str, Any] = {}
            if form_value(f, f"{tag}_weights"):
                ov["blend_weights"] = _weights(form_value(f, f"{tag}_weights"))
            if form_value(f, f"{tag}_rule_set"):
                ov["rule_set"] = form_value(f, f"{tag}_rule_set")
            if form_value(f, f"{tag}_model_versions"):
                ov["model_versions"] = dict(
                    p.split("=", 1) for p in split_items(form_value(f, f"{tag}_model_versions"))
                )
            if form_value(f, f"{tag}_personalization"):
                ov["personalization_weight"] = form_value(f, f"{tag}_personalization")
            variants.append(
                {
                    "name": form_value(f, f"{tag}_name") or tag.upper(),
                    "share": form_value(f, f"{tag}_share") or "50",
                    "overrides": ov,
                }
            )
        spec = ExperimentSpec.model_validate(
            {
                "id": form_value(f, "id") or None,
                "name": form_value(f, "name") or "experiment",
                "surfaces": [s for s in f.get("surfaces", []) if s],
                "variants": variants,
            }
        )
        e = experiments.create(spec)
        if form_value(f, "start_now") in ("on", "true", "1"):
            experiments.start(e.experiment_id)
    except ValidationError as exc:
        return page(
            "experiments.html",
            422,
            csrf=csrf,
            active="experiments",
            error=describe(exc),
            v=values,
            experiments=[experiment_as_dict(x) for x in experiments.list()],
        )
    except (ShopRankError, ValueError) as exc:
        return page(
            "experiments.html",
            400,
            csrf=csrf,
            active="experiments",
            error=str(exc),
            v=values,
            experiments=[experiment_as_dict(x) for x in experiments.list()],
        )
    return see_other(f"/console/experiments/{e.experiment_id}")


@router.post("/experiments/{experiment_id}/{action}")
def experiment_action(
    experiment_id: str, action: str, experiments: ExperimentsDep
) -> Response:
    try:
        if action == "start":
            experiments.start(experiment_id)
        elif action == "stop":
            experiments.stop(experiment_id)
        elif action == "delete":
            experiments.delete(experiment_id)
            return see_other("/console/experiments")
        else:
            return Response("unknown action", status_code=404)
    except ShopRankError as exc:
        return see_other("/console/experiments?" + urlencode({"error": str(exc)}))
    return see_other(f"/console/experiments/{experiment_id}")


@router.get("/experiments/{experiment_id}")
def experiment_page(
    experiment_id: str,
    reports: ReportsDep,
    csrf: CsrfDep,
    metric: Annotated[str, Query(pattern="^(" + "|".join(METRICS) + ")$")] = "ctr",
) -> HTMLResponse:
    exp = reports.experiments.get(experiment_id)
    report = reports.experiment(experiment_id, metric)
    chart = (
        inline_svg(variant_chart(report, metric)) if any(r.users for r in report.by_variant) else ""
    )
    return page(
        "experiment.html",
        csrf=csrf,
        active="experiments",
        e=experiment_as_dict(exp),
        r=report.as_dict(),
        chart=chart,
        metric=metric,
        metrics=METRICS,
        comparisons=[c for c in report.as_dict()["comparisons"]],
    )  # type: ignore[union-attr]
