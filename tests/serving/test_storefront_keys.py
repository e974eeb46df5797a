"""Storefront routes with a storefront key configured: every one refuses a missing or wrong
key, takes the storefront key (header or bearer) and the admin key, and says so in OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import ADMIN_KEY, STOREFRONT_KEY, Live, start_live


@pytest.fixture(scope="module")
def keyed(
    shop_home: Path, trained: dict[str, object], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    import shutil

    home = tmp_path_factory.mktemp("keyed")
    shutil.copytree(shop_home / "data", home / "data")
    shutil.copytree(shop_home / "models", home / "models")
    server, live = start_live(home, storefront_api_key=STOREFRONT_KEY)
    yield live
    server.stop()
    live.services.close()


def _calls(live: Live) -> list[tuple[str, str, dict[str, object] | None]]:
    item = next(
        it.item_id
        for it in live.services.catalog
        if live.services.catalog.is_recommendable(it.item_id)
    )
    event = {"event_id": "key-test-1", "user_id": "u1", "type": "view", "item_id": item,
             "timestamp": "2026-11-01T10:00:00Z"}
    return [
        ("GET", "/v1/recommendations?user_id=u1", None),
        ("GET", "/v1/feed?user_id=u1", None),
        ("GET", "/v1/trending", None),
        ("GET", f"/v1/items/{item}/similar", None),
        ("GET", f"/v1/items/{item}/bought-together", None),
        ("GET", "/v1/search?q=dress", None),
        ("POST", "/v1/search", {"text": "dress"}),
        ("GET", "/v1/search/autocomplete?q=dr", None),
        ("POST", "/v1/events", {"events": [event]}),
    ]


@pytest.mark.parametrize("key, status", [(None, 401), ("wrong-key-0000000000", 403),
                                         (STOREFRONT_KEY, 200), (ADMIN_KEY, 200)])
def test_every_storefront_route_checks_the_key(keyed: Live, key: str | None, status: int) -> None:
    with keyed.client(key) as http:
        for method, path, body in _calls(keyed):
            r = http.request(method, path, json=body)
            assert r.status_code == status, (method, path, r.text[:200])
            if status >= 400:
                assert r.json()["field"] == "X-API-Key", path


def test_bearer_token_is_the_same_key(keyed: Live) -> None:
    r = httpx.get(f"{keyed.url}/v1/trending", headers={"Authorization": f"Bearer {STOREFRONT_KEY}"})
    assert r.status_code == 200
    r = httpx.get(f"{keyed.url}/v1/trending", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_openapi_lists_the_key_on_storefront_and_admin_operations(keyed: Live) -> None:
    schema = httpx.get(f"{keyed.url}/openapi.json").json()
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])
    for method, path, _ in _calls(keyed):
        template = path.split("?")[0]
        if "/v1/items/" in template:
            template = "/v1/items/{item_id}/" + template.rsplit("/", 1)[1]
        op = schema["paths"][template][method.lower()]
        assert {"APIKeyHeader": []} in op.get("security", []), template
    assert "security" not in schema["paths"]["/healthz"]["get"]
