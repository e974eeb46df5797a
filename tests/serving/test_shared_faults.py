"""Shared stores that go away while serving: what needs them answers 503 with a clear
error, what only needs the models keeps answering (real servers of this test's own, stopped
under the running app)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.servers import ROOT, _start, _stop
from tests.serving.conftest import ADMIN_KEY, start_live


@dataclass
class OwnServer:
    script: str
    url: str
    folder: Path

    def stop(self) -> None:
        env = dict(os.environ, **{f"{self.script.upper()}_DIR": str(self.folder)})
        subprocess.run([str(ROOT / "scripts" / self.script), "stop"], env=env, check=True,
                       timeout=120, capture_output=True)


@pytest.fixture()
def own_servers(postgres_server: str, redis_server: str) -> Iterator[dict[str, OwnServer]]:
    """A PostgreSQL and a Redis this test may stop (the session's servers must have started,
    which proves the packages are installed)."""
    servers: dict[str, OwnServer] = {}
    try:
        for script in ("postgres", "redis"):
            url, folder, why = _start(script, script.upper())
            assert url is not None and folder is not None, why
            servers[script] = OwnServer(script, url, folder)
        yield servers
    finally:
        for s in servers.values():
            _stop(s.script, s.script.upper(), s.folder)


def _event(n: int, item: str) -> dict[str, object]:
    return {"event_id": f"fault-{n}", "type": "view", "user_id": "u1", "item_id": item,
            "timestamp": datetime.now(UTC).isoformat()}


def test_stores_that_go_away_answer_503_only_where_needed(
    restart_home: Path, own_servers: dict[str, OwnServer]
) -> None:
    server, lv = start_live(restart_home, database_url=own_servers["postgres"].url,
                            redis_url=own_servers["redis"].url)
    stores = lv.services.stores
    assert stores is not None
    item = lv.services.catalog.ids()[0]
    # u7, asked for only once PostgreSQL is down: a consenting user the models know (read
    # from the store, not through the serving profiles and their cache)
    u7 = stores.users.get("u7")
    assert u7 is not None and u7.consent
    als = lv.services.models.get("als")
    assert als is not None and als.knows_user("u7")
    try:
        with lv.client() as c, lv.client(ADMIN_KEY) as admin:
            r = c.get("/v1/recommendations", params={"user_id": "u1"})
            assert r.status_code == 200 and r.json()["strategy"] == "personalized"
            assert c.post("/v1/events", json={"events": [_event(1, item)]}).json()["accepted"]

            own_servers["redis"].stop()
            # hot state gone: recommendations are still personalized by the models
            r = c.get("/v1/recommendations", params={"user_id": "u1"})
            assert r.status_code == 200 and r.json()["strategy"] == "personalized", r.text
            assert c.get("/v1/feed", params={"user_id": "u1"}).status_code == 200
            # an event is still durable (PostgreSQL); only the hot history misses it
            r = c.post("/v1/events", json={"events": [_event(2, item)]})
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
            assert stores.events.contains("fault-2")

            own_servers["postgres"].stop()
            # durable state gone too: answers that need only the models keep coming. A user
            # this process read before stays personalized (its bounded user cache; consent
            # cannot change while PostgreSQL is away); one it has not read cannot have its
            # consent checked and gets a non-personalized list
            r = c.get("/v1/recommendations", params={"user_id": "u1"})
            assert r.status_code == 200 and len(r.json()["items"]) > 0, r.text
            assert r.json()["strategy"] == "personalized", r.text
            r = c.get("/v1/recommendations", params={"user_id": "u7"})
            assert r.status_code == 200 and len(r.json()["items"]) > 0, r.text
            assert r.json()["strategy"] == "non_personalized", r.text
            assert c.get(f"/v1/items/{item}/similar").status_code == 200
            # what needs a store is a 503 that says so, never a 500
            r = c.post("/v1/events", json={"events": [_event(3, item)]})
            assert r.status_code == 503 and r.json()["error"] == "unavailable", r.text
            r = admin.put("/v1/users/u-new", json={"attributes": {}})
            assert r.status_code == 503 and r.json()["error"] == "storage_unavailable", r.text
            assert r.elapsed.total_seconds() < 10
    finally:
        server.stop()
        lv.services.close()
