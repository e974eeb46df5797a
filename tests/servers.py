"""Session fixtures for a real PostgreSQL and Redis (a pytest plugin loaded by tests/conftest.py).

* ``SHOPRANK_TEST_DATABASE_URL`` / ``SHOPRANK_TEST_REDIS_URL``, when set and answering, are
  used as they are;
* otherwise ``scripts/postgres start`` / ``scripts/redis start`` launch a server on a free port
  with its data in a temporary folder, once per session and only when a test needs it; it is
  stopped at the end (and by itself if the test run dies: ``*_WATCH_PID``).

Without ``REQUIRE_SERVERS=1`` (or ``REQUIRE_OPENSEARCH=1``, which CI sets) a missing server
skips those tests with the reason; with it they fail. Tests using them are marked ``servers``.
Each test gets its own PostgreSQL schema (``pg_url``) and Redis key prefix (``redis_prefix``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]


def servers_required() -> bool:
    flags = (os.environ.get("REQUIRE_SERVERS", "0"), os.environ.get("REQUIRE_OPENSEARCH", "0"))
    return "1" in flags


def _unavailable(what: str, reason: str) -> None:
    if servers_required():
        pytest.fail(f"{what} is required (REQUIRE_SERVERS=1) but {reason}", pytrace=False)
    pytest.skip(f"{what} not available: {reason} (REQUIRE_SERVERS=1 turns this into a failure)")


def _pg_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as c:
            c.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=3).ping())
    except redis.RedisError:
        return False


def _start(script: str, env_prefix: str) -> tuple[str | None, Path | None, str]:
    """Start ``scripts/<script>`` in a temporary folder: (url, folder, "") or (None, None, why)."""
    tried_reason = ""
    for _ in range(3):  # a free port can be taken between choosing and binding it
        folder = Path(tempfile.mkdtemp(prefix=f"shoprank-{script}-"))
        env = dict(os.environ, **{f"{env_prefix}_DIR": str(folder),
                                  f"{env_prefix}_WATCH_PID": str(os.getpid())})
        env.pop(f"{env_prefix}_PORT", None)
        try:
            proc = subprocess.run([str(ROOT / "scripts" / script), "start"], env=env,
                                  capture_output=True, text=True, timeout=180, check=False)
        except subprocess.TimeoutExpired:
            _stop(script, env_prefix, folder)
            return None, None, f"scripts/{script} start did not return within 180 s"
        if proc.returncode == 0:
            return proc.stdout.strip().splitlines()[-1], folder, ""
        shutil.rmtree(folder, ignore_errors=True)
        tried_reason = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        if "already in use" not in tried_reason:
            break
    return None, None, f"scripts/{script} start failed:\n{tried_reason}"


def _stop(script: str, env_prefix: str, folder: Path) -> None:
    env = dict(os.environ, **{f"{env_prefix}_DIR": str(folder)})
    subprocess.run([str(ROOT / "scripts" / script), "stop"], env=env, capture_output=True,
                   timeout=120, check=False)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a real PostgreSQL for this session (database ``shoprank``)."""
    external = os.environ.get("SHOPRANK_TEST_DATABASE_URL", "").strip()
    if external and _pg_answers(external):
        yield external
        return
    installed = list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if shutil.which("pg_ctl") is None and not installed:
        _unavailable("PostgreSQL",
                     "it is not installed (apt-get install postgresql; ./dev test does)")
    url, folder, reason = _start("postgres", "POSTGRES")
    if url is None or folder is None:
        _unavailable("PostgreSQL", reason)
        return
    try:
        yield url
    finally:
        _stop("postgres", "POSTGRES", folder)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """URL of a real Redis for this session."""
    external = os.environ.get("SHOPRANK_TEST_REDIS_URL", "").strip()
    if external and _redis_answers(external):
        yield external
        return
    if shutil.which("redis-server") is None:
        _unavailable("Redis", "it is not installed (apt-get install redis-server; ./dev test does)")
    url, folder, reason = _start("redis", "REDIS")
    if url is None or folder is None:
        _unavailable("Redis", reason)
        return
    try:
        yield url
    finally:
        _stop("redis", "REDIS", folder)


def schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A URL whose tables live in a fresh schema of the session's server (dropped after)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(postgres_server, schema)
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    """A key prefix of this test's own (its keys are deleted after)."""
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "postgres_server" in names or "redis_server" in names:
            item.add_marker(pytest.mark.servers)
