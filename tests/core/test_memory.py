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


# A heap of 1 KB blocks (malloc, not Python's small-object allocator), nine in ten freed: the
# freed pages stay resident until release_free_heap() gives them back.
TRIM_CHILD = """
import sys
from core.memory import release_free_heap
def anon_kb():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1])
blocks = [bytes(1000 + k % 7) for k in range(200_000)]
kept = blocks[::10]
del blocks
before = anon_kb()
applied = release_free_heap() if sys.argv[1] == "1" else False
print(applied, before - anon_kb())
"""


def released_kb(release: bool) -> tuple[str, int]:
    r = subprocess.run([sys.executable, "-c", TRIM_CHILD, "1" if release else "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})
    assert r.returncode == 0, r.stderr
    applied, kb = r.stdout.split()
    return applied, int(kb)


def test_free_heap_pages_go_back_to_the_os() -> None:
    applied, kb = released_kb(True)
    assert applied == "True" and kb > 100_000  # of the ≈ 180 MB freed
    applied, kb = released_kb(False)
    assert applied == "False" and kb < 10_000  # glibc keeps them otherwise
