"""Fixtures for the production recipe's checks (deploy/compose.yaml, deploy/haproxy.cfg).

* ``composecheck``: deploy/composecheck built once per session into a temporary folder
  (``go build``; the first build fetches compose-go from the Go module proxy). Without Go the
  tests using it skip, or fail under ``REQUIRE_SERVERS=1`` / ``REQUIRE_OPENSEARCH=1`` (CI).
* ``resolved``: the project as compose-go resolves it (``docker compose config``) with test
  values for the variables the file requires.
* ``ready_server`` / ``unready_server``: ``shoprank serve`` on a small trained home (``/readyz``
  200) and on an empty one (up, ``/readyz`` 503), each its own process on a free port.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import servers_required

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
CHECKER = DEPLOY / "composecheck"
HAPROXY_CFG = DEPLOY / "haproxy.cfg"
SHOPRANK = Path(sys.executable).with_name("shoprank")

# the variables deploy/compose.yaml requires (${VAR:?...}): test values, not secrets
TEST_VARS = {
    "POSTGRES_PASSWORD": "compose-test-pw",
    "SHOPRANK_ADMIN_API_KEY": "compose-test-" + "a" * 24,
}


def find_go() -> str | None:
    return shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if Path(p).exists()), None)


@pytest.fixture(scope="session")
def composecheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checker's binary, built once per session."""
    go = find_go()
    if go is None:
        reason = "Go is not installed (the compose checker is built with it; ./dev test needs it)"
        if servers_required():
            pytest.fail(f"{reason}; REQUIRE_SERVERS=1 makes this a failure", pytrace=False)
        pytest.skip(f"{reason}; REQUIRE_SERVERS=1 turns this into a failure")
    binary = tmp_path_factory.mktemp("composecheck") / "composecheck"
    proc = subprocess.run([go, "build", "-buildvcs=false", "-o", str(binary), "."], cwd=CHECKER,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, "go build of deploy/composecheck failed:\n" + proc.stderr
    return binary


def run_checker(binary: Path, compose: Path, variables: dict[str, str],
                *profiles: str) -> subprocess.CompletedProcess[str]:
    """The checker on ``compose`` with exactly ``variables`` (no other environment)."""
    args = [str(binary)]
    for p in profiles:
        args += ["-profile", p]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **variables}
    return subprocess.run([*args, str(compose)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture(scope="session")
def resolved(composecheck: Path) -> dict[str, Any]:
    """deploy/compose.yaml resolved by compose-go, with the on-demand ``jobs`` profile on."""
    proc = run_checker(composecheck, COMPOSE, TEST_VARS, "jobs")
    assert proc.returncode == 0, proc.stderr
    project: dict[str, Any] = json.loads(proc.stdout)
    return project


@dataclass
class Server:
    url: str
    port: int
    home: Path


def wait_for(check: Any, seconds: float, what: str, why: Any = lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}; {why()}"
        time.sleep(0.2)


def _answers(url: str, status: int) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == status
    except httpx.HTTPError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(home: Path, log: Path) -> Iterator[Server]:
    """``shoprank serve`` (one worker, embedded stores) on ``home``, once /healthz answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")}
    env.update(SHOPRANK_HOME=str(home), SHOPRANK_SEARCH_BACKEND="embedded",
               SHOPRANK_ADMIN_API_KEY=TEST_VARS["SHOPRANK_ADMIN_API_KEY"],
               SHOPRANK_LOG_LEVEL="WARNING", SHOPRANK_CONFIG=str(home / "absent.toml"))
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(SHOPRANK), "serve", "--host", "127.0.0.1", "--port",
                                 str(port)], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"

    def why() -> str:
        state = "running" if proc.poll() is None else f"exited {proc.returncode}"
        return f"server {state}; its stderr:\n" + log.read_text(errors="replace")[-3000:]

    try:
        wait_for(lambda: proc.poll() is None and _answers(f"{url}/healthz", 200), 120,
                 f"shoprank serve on {home}", why)
        yield Server(url, port, home)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def ready_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose /readyz is 200: a small generated shop, trained and indexed by
    ``shoprank demo --no-serve``."""
    home = tmp_path_factory.mktemp("deploy-ready")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")}
    env.update(SHOPRANK_HOME=str(home), SHOPRANK_SEARCH_BACKEND="embedded",
               SHOPRANK_CONFIG=str(home / "absent.toml"))
    proc = subprocess.run([str(SHOPRANK), "demo", "--no-serve", "--users", "200", "--items",
                           "100", "--events", "5000"], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with serve(home, home / "serve.err") as ready:
        wait_for(lambda: _answers(f"{ready.url}/readyz", 200), 60, "/readyz to answer 200")
        yield ready


@pytest.fixture(scope="session")
def unready_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on an empty home: it answers /healthz, and /readyz says 503 (no catalog, no
    models), as every replica of a new compose stack does."""
    home = tmp_path_factory.mktemp("deploy-empty")
    with serve(home, home.parent / "deploy-empty-serve.err") as unready:
        yield unready


def healthcheck(resolved: dict[str, Any]) -> tuple[str, int]:
    """The replicas' healthcheck code and the port it probes (the one `serve` listens on)."""
    check = resolved["services"]["api-a"]["healthcheck"]
    assert check["test"][:3] == ["CMD", "python", "-c"], check["test"]
    code: str = check["test"][3]
    command = resolved["services"]["api-a"]["command"]
    port = int(command[command.index("--port") + 1])
    assert f"http://127.0.0.1:{port}/readyz" in code, code
    return code, port


def run_check(code: str, port: int, target: int) -> subprocess.CompletedProcess[str]:
    probe = code.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{target}/")
    assert probe != code or port == target
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=30, check=False)


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                        if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        if servers_required():
            pytest.fail("haproxy is required (REQUIRE_SERVERS=1) but not installed",
                        pytrace=False)
        pytest.skip("haproxy not installed (apt-get install haproxy; ./dev test does)")
    return found


def haproxy_stat(sock: Path) -> dict[tuple[str, str], str]:
    """(backend, server) → status (UP, DOWN, ...) from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        s.sendall(b"show stat\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    rows = [ln.split(",") for ln in data.decode().splitlines() if ln and not ln.startswith("#")]
    return {(r[0], r[1]): r[17] for r in rows if r[1] not in ("FRONTEND", "BACKEND")}


@pytest.fixture
def run_haproxy(tmp_path: Path) -> Iterator[Any]:
    """deploy/haproxy.cfg with each replica's address replaced by a local server's, bound to
    a free port, plus a stats socket the test reads the servers' states from."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(a: Server, b: Server) -> tuple[str, Path]:
        port, sock = free_port(), tmp_path / f"stats{len(procs)}.sock"
        text = HAPROXY_CFG.read_text()
        for old, new in (("api-a:8000", f"127.0.0.1:{a.port}"),  # in every backend
                         ("api-b:8000", f"127.0.0.1:{b.port}"),
                         ("bind :8080", f"bind 127.0.0.1:{port}")):
            assert old in text, f"deploy/haproxy.cfg has no {old!r}"
            text = text.replace(old, new)
        assert "\nglobal\n" in text
        text = text.replace("\nglobal\n", f"\nglobal\n    stats socket {sock} level admin\n", 1)
        cfg, log = tmp_path / f"haproxy{len(procs)}.cfg", tmp_path / f"haproxy{len(procs)}.err"
        cfg.write_text(text)
        with open(log, "wb") as err:
            procs.append(subprocess.Popen([haproxy_binary(), "-db", "-f", str(cfg)],
                                          stderr=err, stdout=subprocess.DEVNULL,
                                          start_new_session=True))
        wait_for(sock.exists, 30, "HAProxy's stats socket", lambda: log.read_text()[-2000:])
        return f"http://127.0.0.1:{port}", sock

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=30)
