"""The OpenSearch launcher (scripts/opensearch + the session fixture) gives a real, working node.

Talks plain HTTP (httpx) so it checks the node itself, independent of search/opensearch_backend.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    OpenSearchNode,
    cluster_status,
    free_test_port,
    run_opensearch_script,
)

pytestmark = pytest.mark.opensearch

INDEX_BODY = {
    "settings": {
        "number_of_shards": 1,
        "number_of_replicas": 0,
        "analysis": {
            "analyzer": {
                # Chinese: overlapping character bigrams (analysis-common), no dictionary needed.
                "zh_bigram": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["cjk_width", "lowercase", "cjk_bigram"],
                },
                "en_stem": {
                    "type": "custom",
                    "tokenizer": "standard",
                    "filter": ["lowercase", "english_possessive", "english_stem"],
                },
            },
            "filter": {
                "english_possessive": {"type": "stemmer", "language": "possessive_english"},
                "english_stem": {"type": "stemmer", "language": "english"},
            },
        },
    },
    "mappings": {
        "properties": {
            "title_zh": {"type": "text", "analyzer": "zh_bigram"},
            "title_en": {"type": "text", "analyzer": "en_stem"},
            "brand": {"type": "keyword"},
            "price": {"type": "double"},
        }
    },
}

DOCS = [
    {
        "id": "1",
        "title_zh": "紅色連衣裙 夏季",
        "title_en": "Red summer dress",
        "brand": "Lumi",
        "price": 399,
    },
    {
        "id": "2",
        "title_zh": "藍色連衣裙",
        "title_en": "Blue dresses for women",
        "brand": "Lumi",
        "price": 459,
    },
    {
        "id": "3",
        "title_zh": "男士真皮皮鞋",
        "title_en": "Men's leather shoes",
        "brand": "Ardo",
        "price": 1299,
    },
    {
        "id": "4",
        "title_zh": "跑步運動鞋",
        "title_en": "Running shoes",
        "brand": "Ardo",
        "price": 899,
    },
    {
        "id": "5",
        "title_zh": "智慧型手機",
        "title_en": "Smart phone",
        "brand": "Kiro",
        "price": 8999,
    },
]


@pytest.fixture()
def client(opensearch_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=opensearch_url, timeout=30) as c:
        yield c


@pytest.fixture()
def products(client: httpx.Client) -> Iterator[str]:
    index = f"test-launcher-{uuid.uuid4().hex[:8]}"
    r = client.put(f"/{index}", json=INDEX_BODY)
    assert r.status_code == 200, r.text
    lines = []
    for doc in DOCS:
        lines.append({"index": {"_index": index, "_id": doc["id"]}})
        lines.append({k: v for k, v in doc.items() if k != "id"})
    payload = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
    r = client.post("/_bulk?refresh=true", content=payload.encode(),
                    headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 200 and not r.json()["errors"], r.text
    yield index
    client.delete(f"/{index}")


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [h["_id"] for h in resp.json()["hits"]["hits"]]


def test_node_is_healthy(opensearch_url: str) -> None:
    assert cluster_status(opensearch_url) in ("green", "yellow")


def test_cjk_analyzer_makes_bigrams(client: httpx.Client, products: str) -> None:
    r = client.post(f"/{products}/_analyze", json={"analyzer": "zh_bigram", "text": "紅色連衣裙"})
    assert r.status_code == 200, r.text
    assert [t["token"] for t in r.json()["tokens"]] == ["紅色", "色連", "連衣", "衣裙"]


def test_chinese_query_finds_chinese_documents(client: httpx.Client, products: str) -> None:
    query = {"query": {"match": {"title_zh": {"query": "連衣裙", "operator": "and"}}}}
    assert sorted(_ids(client.post(f"/{products}/_search", json=query))) == ["1", "2"]
    query = {"query": {"match": {"title_zh": {"query": "皮鞋", "operator": "and"}}}}
    assert _ids(client.post(f"/{products}/_search", json=query)) == ["3"]


def test_english_query_is_stemmed(client: httpx.Client, products: str) -> None:
    # "dress" finds "dresses", "run" finds "Running".
    query = {"query": {"match": {"title_en": "dress"}}}
    assert sorted(_ids(client.post(f"/{products}/_search", json=query))) == ["1", "2"]
    query = {"query": {"match": {"title_en": "run"}}}
    assert _ids(client.post(f"/{products}/_search", json=query)) == ["4"]


def test_terms_aggregation_counts(client: httpx.Client, products: str) -> None:
    body = {
        "size": 0,
        "query": {"range": {"price": {"lt": 5000}}},
        "aggs": {"brands": {"terms": {"field": "brand"}}},
    }
    r = client.post(f"/{products}/_search", json=body)
    assert r.status_code == 200, r.text
    buckets = {b["key"]: b["doc_count"] for b in r.json()["aggregations"]["brands"]["buckets"]}
    assert buckets == {"Lumi": 2, "Ardo": 2}


# --- the script itself -----------------------------------------------------------------------


def test_status_of_the_session_node(opensearch_node: OpenSearchNode) -> None:
    if opensearch_node.node_dir is None or opensearch_node.port is None:
        pytest.skip("the session uses SHOPRANK_TEST_OPENSEARCH_URL, not a node it started")
    proc = run_opensearch_script("status", port=opensearch_node.port,
                                 node_dir=opensearch_node.node_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:2] == ["running", opensearch_node.url]


def test_status_of_a_node_never_started(tmp_path: Path) -> None:
    proc = run_opensearch_script("status", port=free_test_port(), node_dir=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.strip() == "stopped"


def test_start_refuses_a_port_outside_the_runner_range(tmp_path: Path) -> None:
    proc = run_opensearch_script("start", port=9400, node_dir=tmp_path)
    assert proc.returncode == 1
    assert "outside 9201..9299" in proc.stderr


def test_start_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = free_test_port()
        s.bind(("127.0.0.1", port))
        s.listen(1)
        proc = run_opensearch_script("start", port=port, node_dir=tmp_path)
    assert proc.returncode == 1
    assert "already in use" in proc.stderr
    assert not (tmp_path / "opensearch.pid").exists()


@pytest.mark.slow
def test_start_status_stop_cycle(opensearch_node: OpenSearchNode, tmp_path: Path) -> None:
    # A second, small node of its own, so the session node is left alone.
    port = free_test_port({opensearch_node.port} if opensearch_node.port else set())
    started = run_opensearch_script("start", port=port, node_dir=tmp_path, heap="384m")
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url == f"http://127.0.0.1:{port}"
        assert cluster_status(url) in ("green", "yellow")
        pid = int((tmp_path / "opensearch.pid").read_text())

        again = run_opensearch_script("start", port=port, node_dir=tmp_path)
        assert again.returncode == 0 and "already started" in again.stderr
        assert int((tmp_path / "opensearch.pid").read_text()) == pid

        status = run_opensearch_script("status", port=port, node_dir=tmp_path)
        assert status.returncode == 0 and status.stdout.startswith(f"running {url}")
    finally:
        stopped = run_opensearch_script("stop", port=port, node_dir=tmp_path, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert not _alive(pid)
    assert cluster_status(url, timeout=2) is None
    after = run_opensearch_script("status", port=port, node_dir=tmp_path)
    assert after.returncode == 1 and after.stdout.strip() == "stopped"


@pytest.mark.slow
def test_node_stops_by_itself_when_its_owner_dies(
    opensearch_node: OpenSearchNode, tmp_path: Path
) -> None:
    # What the session fixture relies on when a test run is killed before its teardown.
    owner = subprocess.Popen(["sleep", "600"])
    port = free_test_port({opensearch_node.port} if opensearch_node.port else set())
    try:
        started = run_opensearch_script("start", port=port, node_dir=tmp_path, heap="384m",
                                        owner_pid=owner.pid)
        assert started.returncode == 0, started.stderr
        pid = int((tmp_path / "opensearch.pid").read_text())
        assert _alive(pid)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 90
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the process table, bounded by the deadline
    alive = _alive(pid)
    if alive:
        run_opensearch_script("stop", port=port, node_dir=tmp_path, timeout=120)
    assert not alive, "the node outlived its owner"
    after = run_opensearch_script("status", port=port, node_dir=tmp_path)
    assert after.returncode == 1 and after.stdout.strip() == "stopped"
