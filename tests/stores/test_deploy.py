"""deploy/haproxy.cfg is a configuration Debian's HAProxy accepts (compose is not run here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import servers_required

ROOT = Path(__file__).resolve().parents[2]


def test_haproxy_accepts_the_deploy_config(tmp_path: Path) -> None:
    if shutil.which("haproxy") is None:
        if servers_required():
            pytest.fail("haproxy is required (REQUIRE_SERVERS=1) but not installed", pytrace=False)
        pytest.skip("haproxy not installed (apt-get install haproxy; ./dev test does)")
    # the compose service names resolve only inside compose: check with local addresses
    text = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert "server api-a api-a:8000" in text and "balance roundrobin" in text
    cfg = tmp_path / "haproxy.cfg"
    local = text.replace("api-a:8000", "127.0.0.1:18001").replace("api-b:8000", "127.0.0.1:18002")
    cfg.write_text(local)
    proc = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
