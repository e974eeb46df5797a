"""`shoprank segments` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shoprank(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOPRANK_HOME": str(home), "SHOPRANK_LOG_LEVEL": "WARNING",
           "COLUMNS": "200", "PYTHONPATH": str(ROOT), "SHOPRANK_SEGMENT_AT_RISK_DAYS": "20"}
    env.pop("SHOPRANK_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=home, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_segments_command_summarizes_charts_and_records(tmp_path: Path) -> None:
    from data.synthetic import ShopSpec, generate

    r = shoprank(tmp_path, "segments")
    assert r.returncode == 2 and "no events found" in r.stderr
    generate(ShopSpec(n_users=300, n_items=200, n_events=15_000, days=60), tmp_path / "data",
             progress=False)
    r = shoprank(tmp_path, "segments", "--out", "charts")
    assert r.returncode == 0, r.stderr
    assert "at risk > 20 d" in " ".join(r.stdout.split()) and "prospect" in r.stdout
    assert (tmp_path / "charts" / "segments.png").read_bytes()[:4] == b"\x89PNG"
    history = [json.loads(x) for x in (tmp_path / "state" / "segments.jsonl").read_text()
               .splitlines()]
    assert len(history) == 1 and history[0]["thresholds"]["at_risk_days"] == 20
    assert history[0]["published"] == sum(history[0]["sizes"].values())
    r = shoprank(tmp_path, "segments", "--out", "charts")
    assert r.returncode == 0 and "user attributes updated: 0" in r.stdout  # nothing changed
