"""A catalog change while OpenSearch does not answer: applied and durable at once, queued for
the index, and searchable once the node answers again — the response says which."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from tests.conftest import OpenSearchNode
from tests.serving.conftest import ADMIN_KEY, start_live


def test_an_upsert_while_the_node_is_frozen_is_queued_and_indexed_later(
    restart_home: Path, opensearch_url: str, opensearch_node: OpenSearchNode
) -> None:
    """The process that took the change stops before the node answers again: the pending id
    is in the store, and the next process (a restart, or another replica) indexes it."""
    assert opensearch_node.node_dir is not None, "needs the node this session started"
    pid = int((opensearch_node.node_dir / "opensearch.pid").read_text().strip())
    index = f"shoprank-retry-{uuid.uuid4().hex[:8]}"
    settings = {"search_backend": "opensearch", "opensearch_url": opensearch_url,
                "opensearch_index": index, "search_timeout_seconds": 3.0}
    item = {"item_id": "i-queued", "title": "Zyxwv queued lantern", "price": 9.0, "stock": 3}
    server, lv = start_live(restart_home, **settings)
    os.kill(pid, signal.SIGSTOP)
    try:
        with lv.client(ADMIN_KEY) as admin:
            r = admin.put("/v1/catalog/items", json={"items": [item]})
            assert r.status_code == 200, r.text
            assert r.json()["indexed"] is False and r.json()["index_pending"] == 1
            assert admin.get("/v1/catalog/items/i-queued").status_code == 200
        assert [d.doc_id for d in lv.services.stores.index_pending.list()] == ["i-queued"]
    finally:
        server.stop()
        lv.services.close()  # gone before the node answers again
        os.kill(pid, signal.SIGCONT)
    server, lv = start_live(restart_home, **settings)
    try:
        with lv.client(ADMIN_KEY) as admin:
            deadline = time.monotonic() + 60
            while True:  # this process's retry thread sends it once the node answers
                hits = admin.get("/v1/search", params={"q": "Zyxwv"})
                if hits.status_code == 200 and [h["item_id"] for h in hits.json()["hits"]] == [
                    "i-queued"
                ]:
                    break
                assert time.monotonic() < deadline, hits.text
                time.sleep(0.2)
            deadline = time.monotonic() + 10
            while lv.services.stores.index_pending.list():
                assert time.monotonic() < deadline, "the indexed id stayed pending"
                time.sleep(0.05)
            again = admin.put("/v1/catalog/items", json={"items": [{**item, "price": 8.0}]})
            assert again.json()["indexed"] is True and again.json()["index_pending"] == 0
    finally:
        server.stop()
        assert lv.services.search is not None
        lv.services.search.client.indices.delete(index=f"{index}*", ignore_unavailable=True)
        lv.services.close()
