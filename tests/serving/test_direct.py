"""Routes marked ``@direct`` (served by ``serving.direct.DirectRoutes``) answer exactly as
FastAPI's own dispatch does: same status, same
body, same headers that matter, for good and bad query strings; the metrics still count them
under their route; and a route that cannot be called directly is refused at import."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from serving.app import create_app
from serving.direct import direct
from tests.serving.conftest import STOREFRONT_KEY, Live

DIRECT = {"/v1/recommendations", "/v1/trending", "/v1/feed"}


@pytest.fixture()
def keyed_app(live: Live) -> FastAPI:
    s = live.services
    settings = s.settings.model_copy(update={"storefront_api_key": SecretStr(STOREFRONT_KEY)})
    app = create_app(settings, s)
    assert app.state.settings.storefront_api_key is not None
    return app


def _cases(live: Live) -> list[str]:
    cat = live.services.catalog
    a, b, c = [i for i in cat.ids() if cat.is_recommendable(i)][:3]
    return [
        "/v1/recommendations?user_id=u1",
        "/v1/recommendations?user_id=u2&n=5&debug=true",
        f"/v1/recommendations?history={a},{b}&n=4",
        f"/v1/recommendations?user_id=u3&exclude={c}&exclude_purchased=false",
        "/v1/recommendations?user_id=u1&category=食品",
        "/v1/recommendations?user_id=never-seen",
        "/v1/recommendations",
        "/v1/recommendations?n=0",
        "/v1/recommendations?n=abc&debug=maybe",
        "/v1/recommendations?user_id=" + "x" * 300,
        "/v1/recommendations?history=" + ",".join(["i"] * 500),
        "/v1/trending",
        "/v1/trending?n=3&debug=true",
        "/v1/trending?category=食品",
        "/v1/trending?n=1000",
        "/v1/feed?user_id=u4&size=6",
        "/v1/feed?user_id=u4&size=6&page=2",
        "/v1/feed?size=0",
        "/v1/feed?page=-1",
    ]


def _get(app: FastAPI, url: str, rid: str, key: str | None = None,
         bearer: str | None = None) -> httpx.Response:
    headers = {"X-Request-ID": rid}
    if key:
        headers["X-API-Key"] = key
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            return await c.get(url, headers=headers)

    return asyncio.run(go())


def _body(r: httpx.Response) -> Any:
    body = r.json()
    if isinstance(body, dict):
        body.pop("request_id", None)
        body.pop("pagination_id", None)
    return body


def test_direct_routes_answer_as_fastapi_does(live: Live) -> None:
    s = live.services
    fast, plain = create_app(s.settings, s), create_app(s.settings, s, direct_routes=False)
    statuses = set()
    for k, url in enumerate(_cases(live)):
        r1 = _get(fast, url, f"direct-{k}")
        r2 = _get(plain, url, f"fastapi-{k}")
        assert r1.status_code == r2.status_code, url
        assert _body(r1) == _body(r2), url
        assert r1.headers["content-type"] == r2.headers["content-type"], url
        assert (
            r1.headers["x-request-id"] == f"direct-{k}"
            and r2.headers["x-request-id"] == f"fastapi-{k}"
        )
        statuses.add(r1.status_code)
        if r1.status_code == 200:
            assert r1.json()["request_id"] == f"direct-{k}"
    assert statuses == {200, 400, 422}  # answers, the service's own errors, validation
    assert fast.state.direct_paths == DIRECT  # the marked routes are the ones served directly
    assert not hasattr(plain.state, "direct_paths")


def test_direct_routes_are_counted_under_their_route(live: Live) -> None:
    s = live.services
    app = create_app(s.settings, s)
    assert _get(app, "/v1/trending?n=2", "m-1").status_code == 200
    assert _get(app, "/v1/trending?n=0", "m-2").status_code == 422
    text = _get(app, "/metrics", "m-3").text
    assert 'shoprank_requests_total{method="GET",route="/v1/trending",status="200"} 1.0' in text
    assert 'shoprank_requests_total{method="GET",route="/v1/trending",status="422"} 1.0' in text
    # other methods on a direct path are FastAPI's: 405, as before
    assert _get(app, "/v1/trending", "m-4").status_code == 200

    async def post() -> int:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            return (await c.post("/v1/trending")).status_code

    assert asyncio.run(post()) == 405


def test_a_route_that_cannot_be_direct_is_refused() -> None:
    with pytest.raises(TypeError, match="async def f"):
        @direct
        def sync_route(q: object, ctx: object) -> Any:  # not async
            return None
    with pytest.raises(TypeError, match="async def f"):
        @direct
        async def with_path(item_id: str, q: object, ctx: object) -> Any:
            return None


def test_direct_routes_check_the_storefront_key(keyed_app: FastAPI) -> None:
    """With a storefront key configured, the direct dispatch refuses as FastAPI's does."""
    plain_status = [_get(keyed_app, "/v1/trending", "k-1").status_code]
    assert plain_status == [401]
    assert _get(keyed_app, "/v1/trending", "k-2", key="wrong-key-0000000000").status_code == 403
    assert _get(keyed_app, "/v1/trending", "k-3", key=STOREFRONT_KEY).status_code == 200
    assert _get(keyed_app, "/v1/trending", "k-4", bearer=STOREFRONT_KEY).status_code == 200
