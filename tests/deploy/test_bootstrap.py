"""The recipe's first start, run with the processes the containers would run: the two replicas
with the environment and command line compose resolves for them (only the addresses of
PostgreSQL, Redis and OpenSearch, the home folder and the listening port changed, for the test
suite's servers and a free port), behind deploy/haproxy.cfg; the catalog and events loaded
through the proxy, the `train` job run with its own environment on a fresh home sharing only
the stores and the model registry (the `models` volume); then both replicas pass their
healthcheck and the proxy answers recommendations. The replicas never write into the registry
(compose mounts it read-only for them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from data.synthetic import ShopSpec, generate
from tests.deploy.conftest import (
    SHOPRANK,
    Server,
    free_port,
    haproxy_stat,
    healthcheck,
    run_check,
    wait_for,
)


def _at(url: str, target: str) -> str:
    """``url`` (a compose service's) pointed at ``target``'s host and port, keeping its user,
    password and path, with ``target``'s query (the test's own schema)."""
    ours, theirs = urlsplit(url), urlsplit(target)
    auth = ours.netloc.rpartition("@")[0]
    netloc = f"{auth}@{theirs.netloc.rpartition('@')[2]}" if auth else theirs.netloc
    return urlunsplit((ours.scheme, netloc, ours.path, theirs.query, ""))


def _environment(service: dict[str, Any], home: Path, urls: dict[str, str],
                 redis_prefix: str, index: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")}
    for key, value in service["environment"].items():
        env[key] = _at(value, urls[key]) if key in urls else value
    home.mkdir(parents=True, exist_ok=True)
    # this test's own index and key prefix on the suite's shared servers; a search budget
    # for a node the whole suite (and its other sessions) loads, not a dedicated one
    env.update(SHOPRANK_HOME=str(home), SHOPRANK_REDIS_PREFIX=redis_prefix,
               SHOPRANK_OPENSEARCH_INDEX=index, SHOPRANK_CONFIG=str(home / "absent.toml"),
               SHOPRANK_LOG_LEVEL="WARNING", SHOPRANK_SEARCH_TIMEOUT_SECONDS="10")
    return env


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


@contextmanager
def replica(command: list[str], env: dict[str, str], log: Path) -> Iterator[Server]:
    """The replica's command line with only its address changed (--host, --port)."""
    port = free_port()
    argv = list(command)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    assert argv[0] == "shoprank"
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(SHOPRANK), *argv[1:]], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=err)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 180, f"replica {argv}")
        yield Server(url, port, Path(env["SHOPRANK_HOME"]))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def test_a_new_stack_loads_trains_and_serves(
    resolved: dict[str, Any], run_haproxy: Any, pg_url: str, redis_server: str,
    redis_prefix: str, opensearch_url: str, tmp_path: Path,
) -> None:
    services = resolved["services"]
    urls = {"SHOPRANK_DATABASE_URL": pg_url, "SHOPRANK_REDIS_URL": redis_server,
            "SHOPRANK_OPENSEARCH_URL": opensearch_url}
    index = f"shoprank-deploy-{redis_prefix.strip(':')}"
    registry = tmp_path / "models-volume"  # the `models` volume every replica mounts
    registry.mkdir()
    shop = tmp_path / "shop"
    generate(ShopSpec(n_users=200, n_items=100, n_events=5_000, seed=5, days=30), shop,
             progress=False)
    homes = {name: tmp_path / name / "var-lib-shoprank" for name in ("api-a", "api-b", "train")}
    envs = {name: _environment(services[name], home, urls, redis_prefix, index)
            for name, home in homes.items()}
    for home in homes.values():  # the volume's mount point: SHOPRANK_HOME/models
        (home / "models").symlink_to(registry)
    key = {"X-API-Key": envs["api-a"]["SHOPRANK_ADMIN_API_KEY"]}
    code, port = healthcheck(resolved)
    with ExitStack() as stack:
        a, b = (stack.enter_context(replica(services[n]["command"], envs[n],
                                            tmp_path / f"{n}.err")) for n in ("api-a", "api-b"))
        url, sock = run_haproxy(a, b)
        wait_for(lambda: haproxy_stat(sock).get(("api_up", "api-a")) == "UP"
                 and haproxy_stat(sock).get(("api_up", "api-b")) == "UP", 30, "both replicas up")
        assert run_check(code, port, a.port).returncode != 0  # nothing loaded yet
        with httpx.Client(base_url=url, timeout=60, headers=key) as c:
            items = [json.loads(ln) for ln in (shop / "items.jsonl").open()]
            put = c.put("/v1/catalog/items", json={"items": items})
            assert put.status_code == 200 and put.json()["upserted"] == len(items), put.text
            events = [json.loads(ln) for ln in (shop / "events.jsonl").open()]
            for i in range(0, len(events), 1_000):
                r = c.post("/v1/events", json={"events": events[i : i + 1_000]})
                assert r.status_code == 200 and not r.json()["rejected"], r.text
        # the replicas mount the registry read-only: they have written nothing into it
        assert not any(registry.iterdir())
        # docker compose run --rm train: its own fresh home, the stores and the registry shared
        train = subprocess.run([str(SHOPRANK), *services["train"]["command"][1:]],
                               env=envs["train"], capture_output=True, text=True, timeout=300,
                               check=False)
        assert train.returncode == 0, train.stderr[-3000:]
        assert (registry / "als").is_dir()
        trained = _snapshot(registry)
        for server in (a, b):  # each replica finds the promoted models and becomes ready
            wait_for(lambda s=server: run_check(code, port, s.port).returncode == 0, 60,
                     f"{server.url} to pass its healthcheck")
        wait_for(lambda: {haproxy_stat(sock).get(("api", s)) for s in ("api-a", "api-b")} == {"UP"},
                 30, "HAProxy to route to both ready replicas", lambda: haproxy_stat(sock))
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(4):  # round robin: both replicas answer
                recs = c.get("/v1/recommendations", params={"user_id": "u1", "n": 5})
                assert recs.status_code == 200, recs.text
                assert len(recs.json()["items"]) == 5
            query = {"q": items[0]["title"].split()[0]}
            for _ in range(2):  # round robin: both replicas search the shared index
                hits = c.get("/v1/search", params=query)
                assert hits.status_code == 200 and hits.json()["hits"], hits.text
        assert _snapshot(registry) == trained  # loading and serving wrote nothing there
