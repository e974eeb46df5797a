"""`shoprank serve --workers 2`: /metrics adds up the counters of every worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.serving.conftest import free_port


def _count(text: str, route: str) -> float:
    pat = re.compile(
        r'^shoprank_requests_total\{(?=[^}]*method="GET")(?=[^}]*route="' + re.escape(route)
        + r'")(?=[^}]*status="200")[^}]*\} (\S+)$', re.M)
    return sum(float(m.group(1)) for m in pat.finditer(text))


def test_metrics_are_summed_over_two_workers(restart_home: Path) -> None:
    port = free_port()
    metrics_dir = restart_home / "state" / "prometheus"
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # from an earlier run: removed
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(SHOPRANK_HOME=str(restart_home), SHOPRANK_SEARCH_BACKEND="embedded",
               SHOPRANK_MODEL_POLL_SECONDS="0", SHOPRANK_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--workers", "2", "--port", str(port)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # readiness: both workers answer once the socket accepts and /healthz is 200
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        # wait until both workers have started (each writes its own files)
        while len({p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("*.db")}) < 2:
            assert time.monotonic() < deadline, "the second worker did not start"
            httpx.get(f"{base}/healthz", timeout=5)  # new connection each time
            time.sleep(0.1)
        before = _count(httpx.get(f"{base}/metrics", timeout=5).text, "/healthz")
        n = 60
        for _ in range(n):  # a new connection per request: the kernel spreads them over workers
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        pids = {p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 2 and "999999.db" not in pids
        for _ in range(4):  # whichever worker answers /metrics reports the sum
            after = _count(httpx.get(f"{base}/metrics", timeout=5).text, "/healthz")
            assert after == before + n
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
