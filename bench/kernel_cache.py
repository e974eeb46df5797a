"""Benchmark: a process's private memory after loading the serving models, with numba's cache
of the ranking kernels empty (the process compiles them) and filled (it loads them).

    python bench/serve.py --users 2000 --items 500 --events 20000 --prepare-only
    python bench/kernel_cache.py --home var/bench-serve-2000x500 --runs 2

Each run starts fresh processes: one on an empty ``NUMBA_CACHE_DIR`` (a fresh checkout, as
every worker of ``shoprank serve`` was before the preparing child compiled the kernels), and,
after a process has filled another folder, one that loads from it (a worker today). Each
process loads the models as serving does (``ranking.modelset.load_model_set``) and then reads
its private memory (``/proc/self/smaps_rollup``). Prints a table and writes
bench/results/kernel_cache.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CHILD = """
from core.settings import get_settings
from ranking.modelset import load_model_set
s = get_settings()
models = load_model_set(s.models_dir, derived_dir=s.derived_dir)
assert models.versions, "no serving models in this home"
kb = sum(int(line.split()[1]) for line in open("/proc/self/smaps_rollup")
         if line.startswith(("Private_Clean", "Private_Dirty")))
print(kb / 1024)
"""


def private_mb(home: Path, cache: Path) -> float:
    env = {**os.environ, "SHOPRANK_HOME": str(home), "NUMBA_CACHE_DIR": str(cache),
           "SHOPRANK_LOG_LEVEL": "WARNING"}
    out = subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="A home with serving models.")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--results", type=Path,
                    default=ROOT / "bench" / "results" / "kernel_cache.json")
    args = ap.parse_args(argv)
    compiled: list[float] = []
    loaded: list[float] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as filled:
            compiled.append(private_mb(args.home, Path(empty)))
            private_mb(args.home, Path(filled))  # fills it
            loaded.append(private_mb(args.home, Path(filled)))
    result = {
        "home": str(args.home), "runs": args.runs,
        "compiled_private_mb": compiled, "loaded_private_mb": loaded,
        "median_compiled_mb": statistics.median(compiled),
        "median_loaded_mb": statistics.median(loaded),
        "command": "python bench/kernel_cache.py " + " ".join(sys.argv[1:]),
    }
    print(f"{'kernels':<28}{'private MB (median)':>20}  runs")
    print(f"{'compiled (empty cache)':<28}{result['median_compiled_mb']:>20.0f}  "
          + ", ".join(f"{v:.0f}" for v in compiled))
    print(f"{'loaded (filled cache)':<28}{result['median_loaded_mb']:>20.0f}  "
          + ", ".join(f"{v:.0f}" for v in loaded))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
