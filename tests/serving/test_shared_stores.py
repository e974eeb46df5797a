"""The API over the shared stores (real PostgreSQL and Redis): what a request reads comes
from the stores, and what another process writes there shows on the next requests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data.models import Event, Item, User
from stores import open_stores
from tests.serving.conftest import ADMIN_KEY, Live, start_live


def wait_for(cond: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture()
def shared(restart_home: Path, pg_url: str, redis_server: str,
           redis_prefix: str) -> Iterator[Live]:
    server, lv = start_live(restart_home, database_url=pg_url, redis_url=redis_server,
                            redis_prefix=redis_prefix)
    yield lv
    server.stop()
    lv.services.close()


def _view(user: str, item: str, n: int) -> dict[str, object]:
    return {"event_id": f"e-{user}-{item}-{n}-{time.time_ns()}", "type": "view",
            "user_id": user, "item_id": item, "timestamp": datetime.now(UTC).isoformat()}


def test_first_start_imports_the_shop_and_serves_from_the_stores(shared: Live) -> None:
    stores = shared.services.stores
    assert stores is not None and stores.durable == "postgresql" and stores.hot == "redis"
    assert stores.catalog.count() == len(shared.services.catalog) > 0
    assert stores.users.count() > 0
    with shared.client() as c:
        item = shared.services.catalog.ids()[3]
        r = c.post("/v1/events", json={"events": [_view("shopper-x", item, 1)]})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        # the view is in the shared history (Redis) and in the shared event store
        assert stores.shopper.recent("shopper-x")[0] == (item, "view")
        assert stores.events.count() >= 1
        with shared.client(ADMIN_KEY) as a:
            prof = a.get("/v1/users/shopper-x").json()
        assert prof["recent_items"][0] == item


def test_another_process_writes_show_on_the_next_requests(
    shared: Live, pg_url: str, redis_server: str, redis_prefix: str
) -> None:
    other = open_stores(pg_url, redis_server, shared.home / "other", redis_prefix=redis_prefix)
    try:
        item = shared.services.catalog.ids()[5]
        # history written by another replica: read on the very next request
        other.shopper.record([Event(event_id="o-1", type="view", user_id="u-other",
                                    item_id=item, timestamp=datetime.now(UTC))])
        with shared.client(ADMIN_KEY) as a:
            other.users.upsert([User(user_id="u-other", attributes={"tier": "gold"})])
            wait_for(lambda: a.get("/v1/users/u-other").json().get("attributes") ==
                     {"tier": "gold"}, 5, "the user change from the other process")
            assert a.get("/v1/users/u-other").json()["recent_items"] == [item]
        # a catalog item added by another replica reaches this one's catalog
        base = shared.services.catalog.get(item)
        assert base is not None
        new = base.model_copy(update={"item_id": "from-other-node", "title": "from other"})
        other.catalog.upsert([Item.model_validate(new.model_dump())])
        wait_for(lambda: "from-other-node" in shared.services.catalog, 5,
                 "the catalog change from the other process")
        with shared.client(ADMIN_KEY) as a:
            r = a.get("/v1/catalog/items/from-other-node")
            assert r.status_code == 200 and r.json()["title"] == "from other", r.text
    finally:
        other.close()


@pytest.mark.parametrize(("var", "value", "named"), [
    ("SHOPRANK_DATABASE_URL", "mysql://shop@db/shop", "SHOPRANK_DATABASE_URL"),
    ("SHOPRANK_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none", "SHOPRANK_DATABASE_URL"),
    ("SHOPRANK_REDIS_URL", "memcached://cache:11211", "SHOPRANK_REDIS_URL"),
])
def test_bad_store_settings_stop_serve_with_one_line(tmp_path: Path, var: str, value: str,
                                                     named: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")}
    env.update(SHOPRANK_HOME=str(tmp_path), **{var: value})
    proc = subprocess.run([sys.executable, "-m", "cli.main", "serve", "--port", "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and named in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
