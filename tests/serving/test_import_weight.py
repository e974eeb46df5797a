"""An API worker does not import what only offline jobs need: each of these costs a worker
10–60 MB of private memory (scipy.stats alone 30 MB), paid by every worker of every replica."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OFFLINE_ONLY = ("sklearn", "scipy.stats", "scipy.optimize", "pandas", "matplotlib", "lightgbm")


def test_the_app_imports_no_offline_library() -> None:
    code = ("import sys, serving.app, serving.routes, cli.serve; "
            f"print([m for m in {OFFLINE_ONLY!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
