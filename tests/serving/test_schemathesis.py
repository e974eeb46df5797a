"""Schemathesis ``--checks all`` over the live OpenAPI schema of a small shop finds nothing.

Two servers, each on its own copy of the test shop (generated writes must not leak into the
other tests' shop): one with an admin and a storefront key configured, called with the admin
key; one with the default configuration of a storefront (admin key only), called with no key —
storefront routes open and declaring no security, admin routes refusing with 401. Every check
runs: no 5xx, every status and body documented, schema-valid input accepted, schema-violating
input refused, declared security enforced, 405s listing the path's methods. The number of
examples per operation is bounded so both runs take well under two minutes on two cores.
The schemathesis CLI is a test dependency (pyproject); without it this test fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serving.conftest import ADMIN_KEY, STOREFRONT_KEY, Live, start_live

MAX_EXAMPLES = 3
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _schemathesis() -> str:
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.fail(f"schemathesis is not installed next to {sys.executable}: run ./dev setup "
                    "(it is a test dependency in pyproject.toml)", pytrace=False)
    return str(exe)


@pytest.fixture()
def copy_home(shop_home: Path, trained: object, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(shop_home / "data", home / "data")
    shutil.copytree(shop_home / "models", home / "models")
    return home


@pytest.fixture(params=["keys", "no-key"])
def fuzzed(request: pytest.FixtureRequest, copy_home: Path) -> Iterator[tuple[Live, list[str]]]:
    if request.param == "keys":
        server, live = start_live(copy_home, storefront_api_key=STOREFRONT_KEY)
        headers = ["-H", f"X-API-Key: {ADMIN_KEY}"]
    else:
        server, live = start_live(copy_home)
        headers = []
    yield live, headers
    server.stop()
    live.services.close()


def test_schemathesis_finds_nothing(fuzzed: tuple[Live, list[str]], tmp_path: Path) -> None:
    live, headers = fuzzed
    cmd = [
        _schemathesis(), "--no-color", "--config-file", str(CONFIG),
        "run", f"{live.url}/openapi.json", "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES), "--seed", "15", "--workers", "1",
        "--request-timeout", "30", "--report-dir", str(tmp_path / "report"), *headers,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False,
                          cwd=tmp_path)  # its cache folder (.schemathesis) goes there
    out = proc.stdout + proc.stderr
    (tmp_path / "schemathesis.txt").write_text(out)
    assert proc.returncode == 0, (
        f"schemathesis found problems (whole output: {tmp_path / 'schemathesis.txt'}):\n"
        + out[-12000:]
    )
    assert "Tested: " in out and " passed" in out, out[-3000:]
