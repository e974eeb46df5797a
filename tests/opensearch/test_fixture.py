"""The session fixture's promise: with REQUIRE_OPENSEARCH=1 a node that cannot start fails the
OpenSearch tests; without it they are skipped with the reason. Checked by running pytest on
one launcher test in a child process whose JDK setting is broken on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = "tests/opensearch/test_launcher.py::test_node_is_healthy"


def _run(require: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SHOPRANK_TEST_OPENSEARCH_URL"}
    env.update(REQUIRE_OPENSEARCH=require, OPENSEARCH_JAVA_HOME=str(ROOT / "no-such-jdk"))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", TARGET],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_required_opensearch_that_cannot_start_fails_the_run() -> None:
    proc = _run("1")
    assert proc.returncode == 1, proc.stdout
    assert "1 error" in proc.stdout
    assert "REQUIRE_OPENSEARCH=1" in proc.stdout and "no working bin/java" in proc.stdout


def test_optional_opensearch_that_cannot_start_is_skipped_with_the_reason() -> None:
    proc = _run("0")
    assert proc.returncode == 0, proc.stdout
    assert "1 skipped" in proc.stdout
    assert "no working bin/java" in proc.stdout
