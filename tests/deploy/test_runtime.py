"""What the recipe's containers run, run here without Docker: the replicas' healthcheck
command against real `shoprank serve` processes, and deploy/haproxy.cfg in Debian's HAProxy
(the image's major version) in front of them, with only the addresses changed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.conftest import (
    HAPROXY_CFG,
    TEST_VARS,
    Server,
    free_port,
    haproxy_binary,
    haproxy_stat,
    healthcheck,
    run_check,
    serve,
    wait_for,
)


def test_the_healthcheck_passes_on_a_ready_replica(
    resolved: dict[str, Any], ready_server: Server
) -> None:
    code, port = healthcheck(resolved)
    proc = run_check(code, port, ready_server.port)
    assert proc.returncode == 0, proc.stderr


def test_the_healthcheck_fails_on_a_replica_that_is_up_but_not_ready(
    resolved: dict[str, Any], unready_server: Server
) -> None:
    code, port = healthcheck(resolved)
    assert httpx.get(f"{unready_server.url}/healthz", timeout=5).status_code == 200
    proc = run_check(code, port, unready_server.port)
    assert proc.returncode != 0 and "503" in proc.stderr, proc.stderr


def test_the_healthcheck_fails_on_a_closed_port(resolved: dict[str, Any]) -> None:
    code, port = healthcheck(resolved)
    proc = run_check(code, port, free_port())
    assert proc.returncode != 0 and "Connection refused" in proc.stderr, proc.stderr
    # a check ends before compose's own timeout would kill it
    assert re.search(r"timeout=(\d+)", code) and resolved["services"]["api-a"][
        "healthcheck"]["timeout"] == "3s"


def backends(text: str) -> dict[str, list[tuple[str, str, int]]]:
    """Each backend's servers as (name, host, port)."""
    found: dict[str, list[tuple[str, str, int]]] = {}
    current = None
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if not line.startswith(" "):
            current = words[1] if words[0] == "backend" else None
            if current:
                found[current] = []
        elif current and words[0] == "server":
            host, _, port = words[2].rpartition(":")
            found[current].append((words[1], host, int(port)))
    return found


def test_haproxy_accepts_the_config_as_it_is() -> None:
    """`haproxy -c` on the file itself: the compose names do not resolve here, which the
    config allows (init-addr none: the server stays down until Docker's DNS knows it)."""
    proc = subprocess.run([haproxy_binary(), "-c", "-f", str(HAPROXY_CFG)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln]
    assert warnings and all("could not resolve address 'api-" in w for w in warnings), warnings


def test_haproxy_sends_traffic_to_the_replicas(resolved: dict[str, Any]) -> None:
    text = HAPROXY_CFG.read_text()
    command = resolved["services"]["api-a"]["command"]
    port = int(command[command.index("--port") + 1])
    found = backends(text)
    assert set(found) == {"api", "api_up"}
    for servers in found.values():
        assert sorted((h, p) for _, h, p in servers) == [("api-a", port), ("api-b", port)]
    proxy = resolved["services"]["haproxy"]
    binds = {int(m) for m in re.findall(r"^\s*bind\s+:(\d+)", text, re.M)}
    assert binds == {p["target"] for p in proxy["ports"]}
    assert set(proxy["depends_on"]) == {"api-a", "api-b"}
    (mount,) = proxy["volumes"]
    assert Path(mount["source"]) == HAPROXY_CFG and mount["read_only"] is True
    assert mount["target"] == "/usr/local/etc/haproxy/haproxy.cfg"  # the image's config path


def test_haproxy_routes_only_to_ready_replicas(
    run_haproxy: Any, ready_server: Server, unready_server: Server
) -> None:
    url, sock = run_haproxy(ready_server, unready_server)
    wait_for(lambda: haproxy_stat(sock).get(("api", "api-b")) == "DOWN", 30,
             "HAProxy to take the unready replica out", lambda: haproxy_stat(sock))
    assert haproxy_stat(sock)[("api", "api-a")] == "UP"
    with httpx.Client(base_url=url, timeout=10) as c:
        answers = [c.get("/readyz").status_code for _ in range(20)]
    assert answers == [200] * 20  # round robin would send half to the 503 replica


def test_a_new_stack_with_no_ready_replica_still_reaches_them(
    run_haproxy: Any, tmp_path: Path
) -> None:
    """Nothing is ready before the catalog and models are loaded: the proxy then sends
    requests to the replicas that are up, so the catalog can be loaded through it."""
    with serve(tmp_path / "home", tmp_path / "serve.err") as new:
        url, sock = run_haproxy(new, new)
        states = lambda: haproxy_stat(sock)  # noqa: E731
        wait_for(lambda: {states().get(("api", s)) for s in ("api-a", "api-b")} == {"DOWN"},
                 30, "HAProxy to find no ready replica", states)
        wait_for(lambda: states().get(("api_up", "api-a")) == "UP", 30, "the live backend")
        admin = {"X-API-Key": TEST_VARS["SHOPRANK_ADMIN_API_KEY"]}
        with httpx.Client(base_url=url, timeout=30) as c:
            ready = c.get("/readyz")
            # the replica's own answer (what is missing), not HAProxy's "no server available"
            assert ready.headers["content-type"] == "application/json", ready.text
            assert ready.status_code == 503 and ready.json()["checks"]["catalog"] is False
            item = {"item_id": "first", "title": "First lantern 燈籠", "price": 9.0, "stock": 3}
            put = c.put("/v1/catalog/items", json={"items": [item]}, headers=admin)
            assert put.status_code == 200, put.text
            assert c.get("/v1/catalog/items/first", headers=admin).json()["title"] == item["title"]
            assert c.get("/readyz").json()["checks"]["catalog"] is True
