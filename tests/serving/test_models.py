"""Model versions over HTTP, and hot reload under load with zero failed requests."""

from __future__ import annotations

import threading
import time

import httpx

from models import ModelHandle
from models.registry import Registry
from tests.serving.conftest import ADMIN_KEY, Live, start_live


class Hammer(threading.Thread):
    """Calls recommendation routes in a loop and records every non-200 answer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.versions: set[str] = set()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as c:
            k = 0
            while not self.stop.is_set():
                k += 1
                path = ("/v1/recommendations", "/v1/feed", "/v1/items/i1/similar")[k % 3]
                try:
                    r = c.get(path, params={"user_id": f"u{k % 50}"})
                except httpx.HTTPError as exc:
                    self.failures.append(f"{path}: {exc!r}")
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{path}: {r.status_code} {r.text[:200]}")
                else:
                    self.ok += 1
                    v = r.json()["model_versions"].get("als")
                    if v:
                        self.versions.add(v)


def test_list_promote_rollback_over_http(live: Live, trained: dict[str, ModelHandle]) -> None:
    reg = Registry(live.home / "models")
    if "v2" not in reg.versions("item_knn"):
        reg.register("item_knn", trained["item_knn"].model, version="v2")
    with live.client(ADMIN_KEY) as admin:
        body = admin.get("/v1/models").json()
        knn = next(m for m in body["models"] if m["name"] == "item_knn")
        assert knn["current_version"] == knn["serving_version"] == "v1"
        assert {v["version"] for v in knn["versions"]} >= {"v1", "v2"}
        r = admin.post("/v1/models/item_knn/promote", json={"version": "v2"})
        assert r.status_code == 200 and r.json()["serving"]["item_knn"] == "v2"
        r = admin.post("/v1/models/item_knn/rollback")
        assert r.status_code == 200 and r.json()["current_version"] == "v1"
        assert live.services.models.versions["item_knn"] == "v1"
        missing = admin.post("/v1/models/item_knn/promote", json={"version": "v9"})
        assert missing.status_code == 404 and missing.json()["field"] == "version"
        assert admin.post("/v1/models/nope/rollback").status_code == 404
        assert admin.post("/v1/models/reload").json()["changed"] is False
    with live.client() as anon:
        assert anon.get("/v1/models").status_code == 401


def test_hot_reload_under_load_fails_no_request(
    live: Live, trained: dict[str, ModelHandle]
) -> None:
    """A version promoted on disk (as `shoprank promote` does) is picked up by the watcher of a
    second server while requests keep flowing; none fails and the new version shows up."""
    reg = Registry(live.home / "models")
    if "v3" not in reg.versions("als"):
        reg.register("als", trained["als"].model, version="v3")
    server, lv = start_live(live.home, model_poll_seconds=0.1)
    hammer = Hammer(lv.url)
    try:
        hammer.start()
        while hammer.ok < 20:
            assert hammer.is_alive() and not hammer.failures, hammer.failures[:3]
            time.sleep(0.01)
        reg.promote("als", "v3")
        deadline = time.monotonic() + 20
        while "v3" not in hammer.versions:
            assert time.monotonic() < deadline, "the watcher did not pick up the promoted version"
            time.sleep(0.01)
        seen = hammer.ok
        while hammer.ok < seen + 20:
            time.sleep(0.01)
    finally:
        hammer.stop.set()
        hammer.join(timeout=10)
        reg.promote("als", "v1")
        server.stop()
        lv.services.close()
    assert not hammer.failures, hammer.failures[:5]
    assert hammer.versions == {"v1", "v3"}
