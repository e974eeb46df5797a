"""The README's public-log block, run as printed on a small MovieLens and RetailRocket file.

The commands are read from README.md (the ```bash block after the marker comment), so the
README cannot drift from what works.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- the block below is run as printed by tests/training/test_public_logs.py -->"


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    after = text.split(MARKER, 1)[1]
    block = re.search(r"```bash\n(.*?)```", after, re.DOTALL)
    assert block is not None, "README: no bash block after the marker"
    return [ln.split("  #")[0].strip() for ln in block.group(1).splitlines() if ln.strip()]


def run(cwd: Path, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def base_env() -> dict[str, str]:
    env = {**os.environ, "SHOPRANK_LOG_LEVEL": "WARNING", "COLUMNS": "250",
           "PYTHONPATH": str(ROOT)}
    env.pop("SHOPRANK_CONFIG", None)
    env.pop("SHOPRANK_HOME", None)
    return env


def clustered_pairs(seed: int, users: int = 90, items: int = 60) -> list[tuple[int, int, int]]:
    """(user, item, time) triples: three taste groups, each mostly on its third of the items."""
    rng = np.random.default_rng(seed)
    out = []
    t0 = 880_000_000
    for u in range(1, users + 1):
        group = u % 3
        chosen = set()
        while len(chosen) < 18:
            own = rng.random() < 0.85
            lo = group * items // 3 if own else 0
            hi = (group + 1) * items // 3 if own else items
            chosen.add(int(rng.integers(lo, hi)) + 1)
        for k, i in enumerate(sorted(chosen, key=lambda _: rng.random())):
            out.append((u, i, t0 + u * 37 + k * 86_400 + int(rng.integers(0, 3600))))
    return out


def write_movielens(path: Path) -> int:
    rows = clustered_pairs(1)
    rng = np.random.default_rng(2)
    path.write_text("".join(f"{u}\t{i}\t{int(rng.integers(1, 6))}\t{t}\n" for u, i, t in rows))
    return len(rows)


def write_retailrocket(path: Path) -> int:
    rows = clustered_pairs(3)
    rng = np.random.default_rng(4)
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    tx = 0
    for u, i, t in rows:
        lines.append(f"{t * 1000},{u},view,{i},")
        if rng.random() < 0.3:
            lines.append(f"{t * 1000 + 5_000},{u},addtocart,{i},")
            if rng.random() < 0.5:
                tx += 1
                lines.append(f"{t * 1000 + 9_000},{u},transaction,{i},{tx}")
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


@pytest.mark.parametrize("fmt", ["movielens", "retailrocket"])
def test_readme_public_log_block_runs_as_printed(tmp_path: Path, fmt: str) -> None:
    lines = readme_block()
    n = write_movielens(tmp_path / "u.data") if fmt == "movielens" else \
        write_retailrocket(tmp_path / "events.csv")
    env = base_env()
    outputs: dict[str, str] = {}
    for line in lines:
        if line.startswith("export "):
            key, value = line[len("export "):].split("=", 1)
            env[key] = value
            continue
        args = shlex.split(line)
        assert args[0] == "shoprank", line
        if args[1] == "import" and fmt == "retailrocket":
            args[2:4] = ["retailrocket", "events.csv"]  # the alternative the comment names
        r = run(tmp_path, env, args[1:])
        assert r.returncode == 0, f"{line}\n{r.stdout}\n{r.stderr}"
        outputs[" ".join(args[1:3])] = r.stdout
    home = tmp_path / env["SHOPRANK_HOME"]
    assert (home / "data" / "events.parquet").is_file()
    assert str(n) in outputs[f"import {fmt}"]
    # Models whose inputs the log lacks are skipped with a note; the others are trained.
    train_out = outputs["train --promote"]
    assert "skipped new_arrivals" in train_out and "skipped content" in train_out
    assert json.loads((home / "models" / "als" / "current.json").read_text())["version"]
    ev = outputs["evaluate --split"]
    assert "skipped: new_arrivals needs the catalog" in ev
    assert ("skipped: bought_together needs baskets" in ev) == (fmt == "movielens")
    # Each evaluation records its protocol with the results.
    results = sorted((home / "reports").glob("evaluate-*/results.json"))
    protocols = [json.loads(p.read_text())["protocol"] for p in results]
    kinds = {p["kind"] for p in protocols}
    assert kinds == {"random", "leave_last_n"} or len(results) == 1
    rnd = next((p for p in protocols if p["kind"] == "random"), None)
    if rnd is not None:
        assert rnd == {"kind": "random", "test_fraction": 0.2, "seed": 7}
    scored = json.loads(results[-1].read_text())
    names = {m["name"] for m in scored["models"]}
    assert {"als", "item_knn", "popularity"} <= names and "content" not in names
    assert {s["name"] for s in scored["skipped"]} >= {"content", "new_arrivals"}
    assert "Best per algorithm" in outputs["tune -a"]


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {**base_env(), "SHOPRANK_HOME": str(tmp_path / "home")}
    write_movielens(tmp_path / "u.data")
    cases = [
        (["import", "movielens", "missing.data"], "no such file"),
        (["import", "netflix", "u.data"], "FORMAT must be one of"),
        (["evaluate", "--split", "bogus"], "--split must be"),
        (["evaluate", "--test-fraction", "1.5"], "--test-fraction must be between 0 and 1"),
    ]
    for args, reason in cases:
        r = run(tmp_path, env, args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        err = r.stderr.strip()
        assert reason in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    # A shop's own events are not replaced by an import without --replace.
    assert run(tmp_path, env, ["import", "movielens", "u.data"]).returncode == 0
    (tmp_path / "home" / "data" / "import.json").unlink()
    r = run(tmp_path, env, ["import", "movielens", "u.data"])
    assert r.returncode == 2 and "--replace" in r.stderr
    assert run(tmp_path, env, ["import", "movielens", "u.data", "--replace"]).returncode == 0
