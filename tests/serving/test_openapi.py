"""The OpenAPI document tells the truth: error answers documented with the error body, key
security declared as configured, JSON types checked strictly, 405s listing the path's methods."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.serving.conftest import ADMIN_KEY, Live

STOREFRONT = {"/v1/recommendations", "/v1/feed", "/v1/trending", "/v1/search",
              "/v1/search/autocomplete", "/v1/events", "/v1/items/{item_id}/similar",
              "/v1/items/{item_id}/bought-together"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in schema["paths"].items()
            for method, op in ops.items()]


def test_error_answers_are_documented_with_the_error_body(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"error", "message"}
    assert {"field", "request_id"} <= set(error["properties"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # not what 422 sends
    for path, method, op in _operations(schema):
        if not path.startswith("/v1/"):
            continue
        statuses = {int(s) for s in op["responses"] if s != "default"}
        assert 503 in statuses, (method, path)
        takes_input = bool(op.get("parameters")) or "requestBody" in op
        assert ({400, 422} <= statuses) == takes_input or path.startswith("/v1/models"), (
            method, path)  # models: a registry refusal is a 400 without input
        if "{" in path:
            assert 404 in statuses, (method, path)
        assert (413 in statuses) == ("requestBody" in op), (method, path)
        for status in statuses - {200, 201, 204}:
            content = op["responses"][str(status)].get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            if (path, status) != ("/v1/events", 422):  # the error body plus the batch answer
                assert ref.endswith("/ErrorOut"), (method, path, status)


def test_security_is_declared_as_configured(client: httpx.Client) -> None:
    """No storefront key configured (this shop): storefront routes are open and declare no
    security; admin routes always need the admin key and declare it."""
    schema = client.get("/openapi.json").json()
    for path, method, op in _operations(schema):
        if path in STOREFRONT:
            assert "security" not in op and 401 not in {int(s) for s in op["responses"]}, path
        elif path.startswith("/v1/"):
            assert {"APIKeyHeader": []} in op["security"], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)
    r = client.get("/v1/trending")  # and indeed open
    assert r.status_code == 200


@pytest.mark.parametrize("method, path, body, field", [
    ("PUT", "/v1/users/u-strict", {"consent": 0}, "consent"),
    ("PUT", "/v1/catalog/items/i-strict",
     {"item_id": "i-strict", "title": "t", "price": 1, "rating": False}, "rating"),
    ("PUT", "/v1/catalog/items/i-strict",
     {"item_id": "i-strict", "title": "t", "price": 1, "created_at": 0}, "created_at"),
    ("PUT", "/v1/catalog/items/i-strict",
     {"item_id": "i-strict", "title": "t", "price": "1"}, "price"),
    ("PUT", "/v1/catalog/items/i-strict",
     {"item_id": "i-strict", "title": "t", "price": 1, "tags": "a,b"}, "tags"),
    ("POST", "/v1/search", {"text": "x", "debug": 0}, "debug"),
    ("POST", "/v1/search", {"text": "x", "size": True}, "size"),
])
def test_json_types_are_strict(admin: httpx.Client, method: str, path: str,
                               body: dict[str, Any], field: str) -> None:
    r = admin.request(method, path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["message"].startswith(f"{field}: ")


def test_strict_types_leave_valid_bodies_alone(admin: httpx.Client) -> None:
    item = {"item_id": "i-strict-ok", "title": "t", "price": 12, "rating": 4,
            "created_at": "2026-01-02T03:04:05Z", "category": ["服裝", "女裝"], "is_active": True}
    assert admin.put("/v1/catalog/items/i-strict-ok", json=item).status_code == 200
    # the shop is shared with other tests: leave no new item behind
    assert admin.delete("/v1/catalog/items/i-strict-ok").status_code == 200
    assert admin.put("/v1/users/u-strict-ok", json={"consent": False}).json()["consent"] is False
    filters = [{"field": "price", "lte": 1000}, {"field": "in_stock", "value": True}]
    r = admin.post("/v1/search", json={"text": "x", "filters": filters})
    assert r.status_code == 200, r.text


def test_the_key_is_checked_before_the_body(live: Live) -> None:
    with live.client() as anonymous:
        r = anonymous.put("/v1/users/u-strict", json={"consent": 0})
    assert r.status_code == 401


@pytest.mark.parametrize("method, path, allow", [
    ("PATCH", "/v1/search", "GET, POST"),
    ("OPTIONS", "/v1/rules/preview", "POST"),
    ("POST", "/v1/rules/some-rule", "DELETE, GET, PUT"),
    ("PATCH", "/v1/catalog/items/i1", "DELETE, GET, PUT"),
    ("POST", "/v1/trending", "GET"),
])
def test_405_lists_every_method_of_the_path(admin: httpx.Client, method: str, path: str,
                                            allow: str) -> None:
    r = admin.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.json()["error"] == "method_not_allowed"


def test_admin_key_fixture_is_the_configured_one(admin: httpx.Client) -> None:
    assert admin.headers["X-API-Key"] == ADMIN_KEY
    assert admin.get("/v1/models").status_code == 200


def test_events_of_the_wrong_json_kind_are_rejected_one_by_one(live: Live,
                                                              client: httpx.Client) -> None:
    cat = live.services.catalog
    item = next(i for i in cat.ids() if cat.is_recommendable(i))
    good = {"event_id": "strict-ev-1", "user_id": "u1", "type": "view", "item_id": item,
            "timestamp": "2026-11-01T10:00:00Z"}
    numeric_time = {**good, "event_id": "strict-ev-2", "timestamp": 0}
    r = client.post("/v1/events", json={"events": [good, numeric_time]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and [x["field"] for x in body["rejected"]] == ["timestamp"]
    alone = client.post("/v1/events", json={"events": [{**numeric_time, "event_id": "x-3"}]})
    assert alone.status_code == 422 and alone.json()["field"] == "events.0.timestamp"
    rule_only = {**good, "event_id": "strict-ev-4", "type": "rate", "value": 9}
    r = client.post("/v1/events", json={"events": [rule_only]})
    assert r.status_code == 400 and r.json()["error"] == "bad_request"  # schema-valid, rule broken


def test_input_the_schema_allows_but_a_rule_refuses_is_400(admin: httpx.Client) -> None:
    """422: the input breaks the schema; 400: it matches the schema but breaks a rule the
    schema cannot state (here: text that is only whitespace, stripped by the model)."""
    rule = {"name": "r", "condition": {"contexts": ["search"],
                                       "query": {"text": "\t", "match": "contains"}},
            "actions": [{"type": "hide", "filter": {"brands": ["x"]}}]}
    r = admin.post("/v1/rules/preview", json={"rule": rule})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "rule.condition.text"
    rule["condition"]["query"]["text"] = ""  # breaks minLength: the schema says so
    assert admin.post("/v1/rules/preview", json={"rule": rule}).status_code == 422
