"""Retrain history over HTTP: GET /v1/models/runs, the history chart, the console's models page."""

from __future__ import annotations

from pathlib import Path

import httpx

from models import ModelHandle
from tests.serving.conftest import ADMIN_KEY, start_live
from training.config import default_config
from training.retrain import Gate, retrain


def test_runs_are_listed_charted_and_shown_in_the_console(
    restart_home: Path, trained: dict[str, ModelHandle]
) -> None:
    cfg = default_config(restart_home / "data")
    cfg.evaluation.max_users = 200
    first = retrain(cfg, restart_home / "models", gate=Gate(models=("item_knn",), tolerance=0.0,
                                                              metric="ndcg@10"))
    passed = retrain(cfg, restart_home / "models", gate=Gate(models=("item_knn",), tolerance=0.99))
    assert passed.models[0].decision == "promoted", passed.models[0].reason
    server, live = start_live(restart_home)
    try:
        with live.client() as anon:
            assert anon.get("/v1/models/runs").status_code == 401
        with live.client(ADMIN_KEY) as admin:
            r = admin.get("/v1/models/runs")
            assert r.status_code == 200, r.text
            runs = r.json()["runs"]
            assert [x["run_id"] for x in runs] == [passed.run_id, first.run_id]
            m = runs[0]["models"][0]
            assert m["name"] == "item_knn" and m["decision"] == "promoted"
            assert m["new_version"] == passed.models[0].new_version
            assert runs[1]["models"][0]["reason"] == first.models[0].reason
            assert admin.get("/v1/models/runs", params={"limit": 1}).json()["runs"][0][
                "run_id"] == passed.run_id
            bad = admin.get("/v1/models/runs", params={"limit": 0})
            assert bad.status_code == 422 and bad.json()["field"].endswith("limit")
            png = admin.get("/v1/models/history.png")
            assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
            assert admin.get("/v1/models/history.png", params={"metric": "auc"}).status_code == 422
        with httpx.Client(base_url=live.url, timeout=60.0) as browser:
            assert browser.post("/console/login", data={"key": ADMIN_KEY}).status_code == 303
            html = browser.get("/console/models").text
            assert 'id="model-history"' in html and "<svg" in html
            assert passed.run_id in html and first.run_id in html
            assert 'data-decision="promoted"' in html
    finally:
        server.stop()
        live.services.close()
