"""`shoprank serve --workers 2`: /metrics adds up the counters of every worker."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.serving.conftest import two_worker_server


def _count(text: str, route: str) -> float:
    pat = re.compile(
        r'^shoprank_requests_total\{(?=[^}]*method="GET")(?=[^}]*route="' + re.escape(route)
        + r'")(?=[^}]*status="200")[^}]*\} (\S+)$', re.MULTILINE)
    return sum(float(m.group(1)) for m in pat.finditer(text))


def test_metrics_are_summed_over_two_workers(restart_home: Path) -> None:
    metrics_dir = restart_home / "state" / "prometheus"
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # from an earlier run: removed
    with two_worker_server(restart_home) as (base, metrics_dir):
        before = _count(httpx.get(f"{base}/metrics", timeout=5).text, "/healthz")
        n = 60
        for _ in range(n):  # a new connection per request: the kernel spreads them over workers
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        pids = {p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 2 and "999999.db" not in pids
        for _ in range(4):  # whichever worker answers /metrics reports the sum
            after = _count(httpx.get(f"{base}/metrics", timeout=5).text, "/healthz")
            assert after == before + n
