"""The malloc arena limit an API process sets before it starts its threads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Eight threads each allocate and hold 64 KB blocks (malloc, below the mmap threshold), then
# glibc's malloc_stats() prints one "Arena n:" section per arena on stderr.
CHILD = """
import ctypes, ctypes.util, sys, threading
from core.memory import limit_malloc_arenas
applied = limit_malloc_arenas(int(sys.argv[1]))
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
held, go = [], threading.Barrier(8)
def work():
    go.wait()
    held.extend(libc.malloc(65536) for _ in range(64))
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(applied, flush=True)
libc.malloc_stats()
"""


def arenas(limit: int) -> tuple[str, int]:
    r = subprocess.run([sys.executable, "-c", CHILD, str(limit)], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip(), sum(line.startswith("Arena ") for line in r.stderr.splitlines())


def test_threads_share_the_limited_arenas() -> None:
    applied, limited = arenas(2)
    assert applied == "True" and 1 <= limited <= 2
    # without the limit the same threads spread over more arenas (glibc's default)
    applied, default = arenas(0)
    assert applied == "False" and default > 2
