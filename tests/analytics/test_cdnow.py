"""CDNOW (real purchases, shipped in the lifetimes package) through the README's commands:
our repurchase rate, retention, AOV and RFM segments against pandas on the same file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from data.formats.cdnow import shipped_path

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- the block below is run as printed by tests/analytics/test_cdnow.py -->"


def test_cdnow_reports_and_segments_match_pandas(tmp_path: Path) -> None:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text("utf-8")
                      .split(MARKER, 1)[1], re.DOTALL)
    assert block is not None
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "SHOPRANK_LOG_LEVEL": "WARNING", "COLUMNS": "200"}
    for k in ("SHOPRANK_HOME", "SHOPRANK_CONFIG"):
        env.pop(k, None)
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block.group(1)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    df = pd.read_csv(shipped_path(), sep=r"\s+", dtype={"customer_id": str, "date": str})
    days = df.groupby("customer_id")["date"].nunique()
    kpis = json.loads((tmp_path / "cdnow_kpis.json").read_text())["overall"]
    assert kpis["users"] == df["customer_id"].nunique() == 23_570
    assert kpis["purchases"] == len(df)
    m = {k: v["value"] for k, v in kpis["metrics"].items()}
    # repurchase: buyers with orders on two or more days; retention: users active on two or
    # more days (every CDNOW user is a buyer, so both are the same share here)
    assert m["repurchase_rate"] == (days >= 2).mean()
    assert m["retention"] == (days >= 2).mean()
    orders = df.groupby(["customer_id", "date"]).ngroups
    assert kpis["orders"] == orders
    assert abs(m["aov"] - df["dollar_value"].sum() / orders) < 1e-6
    assert abs(kpis["revenue"] - df["dollar_value"].sum()) < 0.01

    # RFM and lifecycle, recomputed from the file with pandas (default thresholds 30/60/120)
    seg = pq.read_table(tmp_path / "var" / "cdnow" / "state" / "segments.parquet").to_pandas()
    seg = seg.set_index("user_id").sort_index()
    when = pd.to_datetime(df["date"], format="%Y%m%d")
    per = df.assign(when=when).groupby("customer_id").agg(
        first=("when", "min"), last=("when", "max"), spent=("dollar_value", "sum"))
    as_of = when.max()
    recency = (as_of - per["last"]).dt.days
    since_first = (as_of - per["first"]).dt.days
    expect = np.select([since_first <= 30, recency <= 60, recency <= 120],
                       ["new", "active", "at_risk"], "churned")
    assert (seg.loc[per.index, "lifecycle"].to_numpy() == expect).all()
    assert (seg.loc[days.index, "orders"].to_numpy() == days.to_numpy()).all()
    assert np.allclose(seg.loc[per.index, "monetary"].to_numpy(), per["spent"].to_numpy(),
                       atol=0.006)
    assert np.allclose(seg.loc[per.index, "recency_days"].to_numpy(), recency.to_numpy())
    # higher recency score for a more recent last order, on average
    assert seg.groupby("r_score")["recency_days"].mean().is_monotonic_decreasing
    sizes = json.loads((tmp_path / "var" / "cdnow" / "state" / "segments.jsonl").read_text()
                       .splitlines()[-1])["sizes"]
    assert sizes == {s: int((expect == s).sum()) for s in
                     ("new", "active", "at_risk", "churned")} | {"prospect": 0}
