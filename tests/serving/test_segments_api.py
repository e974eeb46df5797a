"""Segments reach serving: user attributes over the API, rule conditions, the segments
endpoints and the console page — on a running server that was started before the run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pyarrow.parquet as pq

from analytics.segment_runs import run_segments
from models import ModelHandle
from tests.serving.conftest import ADMIN_KEY, start_live


def test_segments_are_user_attributes_rules_can_use(
    restart_home: Path, trained: dict[str, ModelHandle]
) -> None:
    server, live = start_live(restart_home)
    try:
        run = run_segments(restart_home / "data", restart_home / "events",
                           restart_home / "state", live.services.stores.users)
        assert run.published > 0 and sum(run.sizes.values()) == run.segments.table.num_rows
        rows = {r["user_id"]: r for r in pq.read_table(
            restart_home / "state" / "segments.parquet").to_pylist()}
        buyer = next(u for u, r in rows.items() if r["lifecycle"] in ("active", "at_risk", "new"))
        prospect = next(u for u, r in rows.items() if r["lifecycle"] == "prospect")
        stage = rows[buyer]["lifecycle"]
        with live.client(ADMIN_KEY) as admin:
            user = admin.get(f"/v1/users/{buyer}").json()
            attrs = user["attributes"]
            assert attrs["lifecycle"] == stage and attrs["rfm"] == rows[buyer]["rfm"]
            assert attrs["price_band"] in ("budget", "mid", "premium")
            assert attrs["top_category"] == rows[buyer]["top_categories"].split("|")[0]
            assert "segment" in attrs  # the shop's own attribute is kept
            pin = next(it for it in live.services.catalog if it.is_active).item_id
            r = admin.post("/v1/rules", json={
                "id": "pin-for-stage", "name": "pin for a lifecycle stage",
                "condition": {"contexts": ["feed"], "user_attributes": {"lifecycle": [stage]}},
                "actions": [{"type": "pin", "pins": [{"item_id": pin, "position": 1}]}]})
            assert r.status_code in (200, 201), r.text
            r = admin.post("/v1/experiments", json={
                "id": "stage-test", "name": "only one stage", "surfaces": ["feed"],
                "audience": {"lifecycle": [stage]},
                "variants": [{"name": "control", "share": 50}, {"name": "b", "share": 50}]})
            assert r.status_code in (200, 201), r.text
            assert r.json()["audience"] == {"lifecycle": [stage]}
            assert admin.post("/v1/experiments/stage-test/start").status_code == 200
            seg = admin.get("/v1/segments").json()
            assert seg["runs"][-1]["sizes"] == run.sizes
            assert set(seg["runs"][-1]["kpis"][stage]) >= {"ctr", "conversion_rate", "aov",
                                                           "repurchase_rate", "retention"}
            png = admin.get("/v1/segments.png")
            assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        with live.client() as anon:
            assert anon.get("/v1/segments").status_code == 401
            mine = anon.get("/v1/feed", params={"user_id": buyer, "size": 5}).json()
            first = mine["items"][0]
            assert first["item_id"] == pin
            assert any(x.get("rule_id") == "pin-for-stage" for x in first["reasons"])
            theirs = anon.get("/v1/feed", params={"user_id": prospect, "size": 5}).json()
            assert not any(x.get("rule_id") == "pin-for-stage" for it in theirs["items"]
                           for x in it["reasons"])
            # the experiment's audience: the buyer's stage takes part, a prospect does not
            assert mine["experiment"] == "stage-test" and mine["variant"] in ("control", "b")
            assert theirs.get("experiment") is None
        with httpx.Client(base_url=live.url, timeout=60.0) as browser:
            assert browser.post("/console/login", data={"key": ADMIN_KEY}).status_code == 303
            html = browser.get("/console/segments").text
            assert f'data-stage="{stage}"' in html and "<svg" in html
    finally:
        server.stop()
        live.services.close()
