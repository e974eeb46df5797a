"""Two `shoprank serve` nodes behind a real HAProxy (round robin), with separate local
folders, sharing only PostgreSQL, Redis and the model registry folder.

Node A starts on a home holding the generated shop (and imports it into the empty stores);
node B starts on an empty home. Everything a request needs must come from the stores.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from stores import Stores, open_stores
from tests.servers import schema_url
from tests.serving.conftest import ADMIN_KEY, free_port


def wait_for(cond: Callable[[], bool], seconds: float, what: str) -> float:
    """Poll ``cond`` until true; returns how long it took."""
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < seconds, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - start


@dataclass
class Node:
    name: str
    home: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return (self.home / "server.err").read_text(errors="replace")[-3000:]


@dataclass
class Cluster:
    a: Node
    b: Node
    proxy: str
    stores: Stores
    haproxy: subprocess.Popen[bytes]


def _start_node(name: str, home: Path, env: dict[str, str], workers: int = 1) -> Node:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(port),
             "--workers", str(workers)],
            env={**env, "SHOPRANK_HOME": str(home)}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=err,
        )
    node = Node(name, home, port, proc)

    def ready() -> bool:
        assert proc.poll() is None, f"node {name} exited: {node.stderr()}"
        try:
            return httpx.get(node.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 180, f"node {name} to answer")
    return node


def _haproxy(folder: Path, port: int, nodes: list[Node]) -> subprocess.Popen[bytes]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.fail("HAProxy is not installed (apt-get install haproxy; ./dev test does)")
    servers = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.port} check inter 500ms fall 3 rise 2" for n in nodes
    )
    cfg = folder / "haproxy.cfg"
    cfg.write_text(f"""
global
    maxconn 512
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on conn-failure empty-response
    timeout check 5s
frontend shop
    bind 127.0.0.1:{port}
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /healthz
    http-response set-header X-Node %s
{servers}
""")
    proc = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=open(folder / "haproxy.err", "wb"), start_new_session=True)
    seen: set[str] = set()

    def both_up() -> bool:  # readiness: each node has answered through the proxy
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        except httpx.HTTPError:
            return False
        if r.status_code == 200:
            seen.add(r.headers.get("X-Node", ""))
        return {n.name for n in nodes} <= seen

    wait_for(both_up, 60, "HAProxy to route to every node")
    return proc


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def cluster(shop_home: Path, trained: object, postgres_server: str, redis_server: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("two-nodes")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    db_url = schema_url(postgres_server, schema)
    prefix = f"t{uuid.uuid4().hex[:12]}:"
    registry = root / "registry"
    shutil.copytree(shop_home / "models", registry)
    home_a = root / "a"
    shutil.copytree(shop_home / "data", home_a / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPRANK_")}
    env.update(SHOPRANK_DATABASE_URL=db_url, SHOPRANK_REDIS_URL=redis_server,
               SHOPRANK_REDIS_PREFIX=prefix, SHOPRANK_MODEL_REGISTRY=str(registry),
               SHOPRANK_ADMIN_API_KEY=ADMIN_KEY, SHOPRANK_SEARCH_BACKEND="embedded",
               SHOPRANK_LOG_LEVEL="WARNING", SHOPRANK_MODEL_POLL_SECONDS="0")
    nodes: list[Node] = []
    haproxy = None
    stores = None
    try:
        nodes.append(_start_node("a", home_a, env))  # imports the shop into the stores
        # an empty home, and uvicorn's own two workers (nothing per worker to keep in step)
        nodes.append(_start_node("b", root / "b", env, workers=2))
        port = free_port()
        haproxy = _haproxy(root, port, nodes)
        stores = open_stores(db_url, redis_server, root / "test-client", redis_prefix=prefix)
        yield Cluster(nodes[0], nodes[1], f"http://127.0.0.1:{port}", stores, haproxy)
    finally:
        if stores is not None:
            stores.close()
        for proc in [*(n.proc for n in nodes), haproxy]:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
        with psycopg.connect(postgres_server, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


def _event(user: str, item: str, etype: str = "view") -> dict[str, object]:
    return {"event_id": uuid.uuid4().hex, "type": etype, "user_id": user, "item_id": item,
            "timestamp": datetime.now(UTC).isoformat()}


def _related(body: dict[str, object]) -> set[str]:
    out: set[str] = set()
    for it in body["items"]:  # type: ignore[union-attr]
        for r in it.get("reasons") or []:  # type: ignore[union-attr]
            if r.get("related_item_id"):
                out.add(r["related_item_id"])
    return out


def test_node_b_starts_empty_and_serves_the_shared_shop(cluster: Cluster) -> None:
    assert not (cluster.b.home / "data" / "items.jsonl").exists()
    with httpx.Client(base_url=cluster.b.url, headers={"X-API-Key": ADMIN_KEY}) as b:
        r = b.get("/v1/feed", params={"size": 5})
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        catalog = {it.item_id for it in cluster.stores.catalog.iter_items()}
        assert {it["item_id"] for it in r.json()["items"]} <= catalog
        rec = b.get("/v1/recommendations", params={"user_id": "u1", "n": 5})
        assert rec.status_code == 200 and len(rec.json()["items"]) == 5


def test_a_view_shows_in_the_next_feed_whichever_node_answers(cluster: Cluster) -> None:
    user = "tn-" + uuid.uuid4().hex[:8]
    item = next(it.item_id for it in cluster.stores.catalog.iter_items() if it.is_active)
    with httpx.Client(base_url=cluster.proxy) as c:
        r = c.post("/v1/events", json={"events": [_event(user, item)]})
        assert r.status_code == 200 and r.json()["accepted"] == 1
        answered = set()
        for _ in range(6):  # round robin: each node, and both of B's workers in turn
            r = c.get("/v1/feed", params={"user_id": user, "debug": "true"},
                      headers={"Connection": "close"})
            assert r.status_code == 200
            answered.add(r.headers["X-Node"])
            assert item in _related(r.json()), (r.headers["X-Node"], r.json())
        assert answered == {"a", "b"}


def test_a_rule_created_on_a_applies_on_b(cluster: Cluster) -> None:
    pin = [it.item_id for it in cluster.stores.catalog.iter_items() if it.is_active][7]
    with httpx.Client(base_url=cluster.a.url, headers={"X-API-Key": ADMIN_KEY}) as a, \
            httpx.Client(base_url=cluster.b.url) as b:
        before = [it["item_id"] for it in b.get("/v1/feed", params={"size": 5}).json()["items"]]
        assert before[0] != pin
        r = a.post("/v1/rules", json={
            "id": "two-nodes-pin", "name": "pin on both nodes",
            "condition": {"contexts": ["feed"]},
            "actions": [{"type": "pin", "pins": [{"item_id": pin, "position": 1}]}]})
        assert r.status_code in (200, 201), r.text
        took = wait_for(
            lambda: b.get("/v1/feed", params={"size": 5}).json()["items"][0]["item_id"] == pin,
            5, "node B to apply the rule created on node A")
        assert took < 2.0  # the change feed (and a revision check every half second)
        assert a.delete("/v1/rules/two-nodes-pin").status_code in (200, 204)
        wait_for(
            lambda: b.get("/v1/feed", params={"size": 5}).json()["items"][0]["item_id"] != pin,
            5, "node B to drop the deleted rule")


def test_an_experiment_started_on_a_applies_on_b(cluster: Cluster) -> None:
    exp = "two-nodes-exp-" + uuid.uuid4().hex[:6]
    users = [f"u{k}" for k in range(1, 9)]

    def variants(c: httpx.Client) -> dict[str, tuple[str | None, str | None]]:
        out = {}
        for u in users:
            body = c.get("/v1/feed", params={"user_id": u, "size": 3}).json()
            out[u] = (body.get("experiment"), body.get("variant"))
        return out

    with httpx.Client(base_url=cluster.a.url, headers={"X-API-Key": ADMIN_KEY}) as a, \
            httpx.Client(base_url=cluster.b.url) as b:
        assert all(e is None for e, _ in variants(b).values())
        r = a.post("/v1/experiments", json={
            "id": exp, "name": "assigned on both nodes", "surfaces": ["feed"],
            "variants": [{"name": "control", "share": 50}, {"name": "b", "share": 50}]})
        assert r.status_code in (200, 201), r.text
        assert a.post(f"/v1/experiments/{exp}/start").status_code == 200
        wait_for(lambda: all(e == exp for e, _ in variants(b).values()), 5,
                 "node B to assign the experiment started on node A")
        on_b, on_a = variants(b), variants(a)
        assert on_b == on_a  # one user, one variant, whichever node answers
        assert {v for _, v in on_b.values()} <= {"control", "b"}
        assert a.post(f"/v1/experiments/{exp}/stop").status_code == 200
        wait_for(lambda: all(e is None for e, _ in variants(b).values()), 5,
                 "node B to stop assigning the stopped experiment")
        assert a.delete(f"/v1/experiments/{exp}").status_code == 204


def test_an_erasure_through_a_holds_on_b(cluster: Cluster) -> None:
    user = "tn-erase-" + uuid.uuid4().hex[:6]
    items = [it.item_id for it in cluster.stores.catalog.iter_items() if it.is_active][:3]
    with httpx.Client(base_url=cluster.a.url, headers={"X-API-Key": ADMIN_KEY}) as a, \
            httpx.Client(base_url=cluster.b.url, headers={"X-API-Key": ADMIN_KEY}) as b:
        assert a.put(f"/v1/users/{user}", json={"attributes": {"tier": "gold"}}).status_code == 200
        r = b.post("/v1/events", json={"events": [_event(user, i) for i in items]})
        assert r.json()["accepted"] == 3
        rids = [b.get("/v1/feed", params={"user_id": user}).json()["request_id"],
                a.get("/v1/feed", params={"user_id": user}).json()["request_id"]]
        wait_for(lambda: all(cluster.stores.requests.lookup(rids).get(r) for r in rids), 10,
                 "the served lists in the shared request log")
        assert b.get(f"/v1/users/{user}").json()["recent_items"]
        rec = b.get("/v1/recommendations", params={"user_id": user, "debug": "true"}).json()
        assert _related(rec) & set(items), rec  # B recommends from the views before
        r = a.delete(f"/v1/users/{user}")
        assert r.status_code == 200 and r.json()["events_erased"] == 3
        # on B: no profile, no personal history in the feed, no events, anonymized log
        assert b.get(f"/v1/users/{user}").status_code == 404
        feed = b.get("/v1/feed", params={"user_id": user, "debug": "true"}).json()
        assert not _related(feed) & set(items)
        rec = b.get("/v1/recommendations", params={"user_id": user, "debug": "true"}).json()
        assert not _related(rec) & set(items), rec
        assert rec["strategy"] != "personalized"
        assert not [e for e in cluster.stores.events.iter_events() if e.user_id == user]
        logged = cluster.stores.requests.lookup(rids)
        assert all(logged[r].user_id is None for r in rids), logged


def test_feed_page_two_never_repeats_page_one_across_nodes(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.a.url) as a, httpx.Client(base_url=cluster.b.url) as b:
        p1 = a.get("/v1/feed", params={"size": 10, "user_id": "u1"}).json()
        p2 = b.get("/v1/feed", params={"size": 10, "user_id": "u1", "page": 2,
                                       "request_id": p1["request_id"]}).json()
        one = [it["item_id"] for it in p1["items"]]
        two = [it["item_id"] for it in p2["items"]]
        assert len(one) == 10 and len(two) == 10
        assert not set(one) & set(two)
        again = a.get("/v1/feed", params={"size": 10, "user_id": "u1", "page": 2,
                                          "request_id": p1["request_id"]}).json()
        assert [it["item_id"] for it in again["items"]] == two  # one list for both nodes


def test_kill_9_of_a_under_load_loses_no_acknowledged_event(cluster: Cluster) -> None:
    """Last: it kills node A."""
    items = [it.item_id for it in cluster.stores.catalog.iter_items() if it.is_active][:50]
    acked: list[str] = []
    failed: list[int] = []
    stop = threading.Event()

    def post_events() -> None:
        with httpx.Client(base_url=cluster.proxy, timeout=10) as c:
            n = 0
            while not stop.is_set():
                n += 1
                ev = _event(f"load-{n % 97}", items[n % len(items)])
                try:
                    r = c.post("/v1/events", json={"events": [ev]})
                except httpx.HTTPError:
                    failed.append(-1)
                    continue
                if r.status_code == 200 and r.json()["accepted"] + r.json()["duplicates"] == 1:
                    acked.append(str(ev["event_id"]))
                else:
                    failed.append(r.status_code)

    threads = [threading.Thread(target=post_events) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 100, 60, "100 acknowledged events before the kill")
        os.killpg(cluster.a.proc.pid, signal.SIGKILL)
        cluster.a.proc.wait(timeout=10)
        at_kill = len(acked)
        wait_for(lambda: len(acked) >= at_kill + 200, 60, "200 more events acknowledged by B")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    missing = [e for e in acked if not cluster.stores.events.contains(e)]
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged events are not stored"
    with httpx.Client(base_url=cluster.proxy) as c:
        answers = [c.get("/v1/feed", params={"size": 3}) for _ in range(10)]
    assert all(r.status_code == 200 and r.headers["X-Node"] == "b" for r in answers)
