"""Property-based run over the OpenAPI schema: no input makes the API answer 5xx.

Runs against its own small live server (writes from generated inputs must not leak into the
other tests' shop), with the admin key so admin routes are exercised past authentication.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.serving.conftest import ADMIN_KEY, Live, start_live


@pytest.fixture(scope="module")
def fuzz_live(
    shop_home: Path, trained: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    home = tmp_path_factory.mktemp("fuzz-shop")
    shutil.copytree(shop_home / "data", home / "data")
    shutil.copytree(shop_home / "models", home / "models")
    server, lv = start_live(home)
    yield lv
    server.stop()
    lv.services.close()


@pytest.fixture(scope="module")
def api_schema(fuzz_live: Live) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{fuzz_live.url}/openapi.json")


def test_no_server_errors(api_schema: schemathesis.BaseSchema) -> None:
    operations = [res.ok() for res in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers={"X-API-Key": ADMIN_KEY}, timeout=30)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, (
                f"{where}: {response.status_code} {response.text[:500]}"
            )
            ctype = response.headers.get("content-type") or [""]
            if response.status_code >= 400 and ctype[0].startswith("application/json"):
                assert response.json().get("message"), (where, response.text[:300])

        check()
