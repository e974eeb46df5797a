"""Closed loops over the simulated storefront: hand-blend traffic, and an A/B test of the ranker.

* :func:`traffic` — sessions served as the shop serves now: before any ranker is promoted,
  the hand blend, so a shop without a served log gets one (the ranker's first training lists).
* :func:`ab_test` — an experiment splits the shoppers between the hand blend (``control``,
  ``{"ranker": "off"}``) and the learned ranker (``ranker``, ``{"ranker": "current"}``); after
  the sessions the experiment is stopped and the project's KPI report
  (``GET /v1/experiments/{id}/results``) is read for CTR, conversion and revenue per user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from simulate.storefront import LoopStats, World, run_sessions

log = logging.getLogger(__name__)

EXPERIMENT_ID = "ranker-ab"
KPIS = ("ctr", "conversion_rate", "revenue_per_user", "add_to_cart_rate")


def traffic(client: httpx.Client, world: World, sessions: int, *, seed: int = 1, size: int = 20,
            explore_share: float = 0.0, progress: Callable[[int], None] | None = None
            ) -> LoopStats:
    """Sessions served as the shop serves now (the hand blend until a ranker is promoted);
    with ``explore_share`` > 0 that share of the shoppers (an experiment) gets the blend's
    first candidates in a random order instead (``ranking.learned.EXPLORE``)."""
    if explore_share <= 0:
        return run_sessions(client, world, sessions, seed=seed, size=size, progress=progress)
    exp = f"explore-{seed}"
    share = round(100 * explore_share, 3)
    _start(client, {"id": exp, "name": "exploration traffic", "surfaces": ["feed"],
                    "variants": [{"name": "served", "share": 100 - share},
                                 {"name": "explore", "share": share,
                                  "overrides": {"model_versions": {"ranker": "explore"}}}]},
           client.headers.get("X-API-Key"))
    try:
        return run_sessions(client, world, sessions, seed=seed, size=size, progress=progress)
    finally:
        client.post(f"/v1/experiments/{exp}/stop")


def _start(client: httpx.Client, spec: dict[str, Any], key: str | None) -> None:
    r = client.post("/v1/experiments", json=spec)
    if r.status_code >= 300:
        raise RuntimeError(f"cannot create the experiment: {r.status_code} {r.text[:300]}")
    r = client.post(f"/v1/experiments/{spec['id']}/start")
    if r.status_code >= 300:
        raise RuntimeError(f"cannot start the experiment: {r.status_code} {r.text[:300]}")


@dataclass(frozen=True)
class AbResult:
    stats: LoopStats
    report: dict[str, Any]
    """The KPI report as the API returns it."""

    def kpis(self) -> dict[str, dict[str, Any]]:
        """Variant → {kpi: value, kpi_ci: [lo, hi]} and per treatment kpi: lift, p, verdict."""
        out: dict[str, dict[str, Any]] = {}
        for v in self.report.get("variants", []):
            name = v.get("variant") or v.get("name")
            row: dict[str, Any] = {"users": v.get("kpis", {}).get("users", v.get("users"))}
            kp = v.get("kpis", v)
            for k in KPIS:
                m = kp.get(k)
                if isinstance(m, dict):
                    row[k] = m.get("value")
                    row[f"{k}_ci"] = [m.get("low"), m.get("high")]
                else:
                    row[k] = m
            out[str(name)] = row
        return out


def ab_test(client: httpx.Client, world: World, sessions: int, *, seed: int = 2, size: int = 20,
            progress: Callable[[int], None] | None = None, metric: str = "ctr") -> AbResult:
    """Hand blend vs learned ranker, 50/50 by user, then the KPI report of the experiment."""
    _start(client, {"id": EXPERIMENT_ID, "name": "learned ranker vs hand blend",
                    "surfaces": ["feed"], "control": "hand_blend",
                    "variants": [{"name": "hand_blend", "share": 50,
                                  "overrides": {"model_versions": {"ranker": "off"}}},
                                 {"name": "ranker", "share": 50,
                                  "overrides": {"model_versions": {"ranker": "current"}}}]},
           client.headers.get("X-API-Key"))
    stats = run_sessions(client, world, sessions, seed=seed, size=size, progress=progress)
    client.post(f"/v1/experiments/{EXPERIMENT_ID}/stop")
    reports = {}
    for m in (metric, "conversion_rate", "revenue_per_user"):
        r = client.get(f"/v1/experiments/{EXPERIMENT_ID}/results", params={"metric": m})
        if r.status_code != 200:
            raise RuntimeError(f"KPI report failed: {r.status_code} {r.text[:300]}")
        reports[m] = r.json()
    return AbResult(stats, {"by_metric": reports, **reports[metric]})
