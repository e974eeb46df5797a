"""The pipeline logs every served request in its request log (assignment records nothing);
rule previews rank through the same pipeline without a request log, so they are not traffic."""

from __future__ import annotations

from pathlib import Path

from serving.deps import get_request_log
from tests.serving.conftest import ADMIN_KEY, start_live


def test_served_requests_are_logged_with_their_variant_and_previews_are_not(
    restart_home: Path,
) -> None:
    server, lv = start_live(restart_home)
    try:
        requests = get_request_log(lv.services)
        with lv.client(ADMIN_KEY) as admin, lv.client() as c:
            r = admin.post("/v1/experiments", json={
                "id": "logged", "name": "logged", "surfaces": ["feed"],
                "variants": [{"name": "A", "share": 50}, {"name": "B", "share": 50}]})
            assert r.status_code in (200, 201), r.text
            assert admin.post("/v1/experiments/logged/start").status_code == 200
            feed = c.get("/v1/feed", params={"user_id": "u3"}).json()
            rec = c.get("/v1/recommendations", params={"user_id": "u3"}).json()
            item = lv.services.catalog.ids()[0]
            rule = {"name": "pin", "condition": {"contexts": ["feed"]},
                    "actions": [{"type": "pin", "pins": [{"item_id": item, "position": 1}]}]}
            p = admin.post("/v1/rules/preview", json={"rule": rule, "user_id": "u3",
                                                      "sample_size": 4})
            assert p.status_code == 200, p.text
        requests.flush()
        got = requests.lookup([feed["request_id"], rec["request_id"]])
        row = got[feed["request_id"]]
        assert (row.surface, row.user_id, row.experiment) == ("feed", "u3", "logged")
        assert row.variant in ("A", "B")
        assert got[rec["request_id"]].experiment is None  # recommendations are not in it
        assert not [s for s in requests.recent(limit=1000)
                    if s.request_id.startswith("preview-")]
    finally:
        server.stop()
        lv.services.close()
