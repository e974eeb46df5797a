"""`serving.cpus`: each worker claims a CPU of its own through a lock file held for its life."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from serving import cpus


@pytest.fixture
def release_claims() -> object:
    before = len(cpus._held)
    yield None
    while len(cpus._held) > before:
        os.close(cpus._held.pop())


@pytest.mark.usefixtures("release_claims")
def test_claims_take_the_free_slots_in_order_and_none_when_all_are_held(tmp_path: Path) -> None:
    # each claim opens the lock file anew: a second claim in this process conflicts as a
    # second process's would
    assert cpus.claim_cpu(tmp_path, [5, 7]) == 5
    assert cpus.claim_cpu(tmp_path, [5, 7]) == 7
    assert cpus.claim_cpu(tmp_path, [5, 7]) is None
    os.close(cpus._held.pop(0))  # the holder of slot 0 ends
    assert cpus.claim_cpu(tmp_path, [5, 7]) == 5


@pytest.mark.usefixtures("release_claims")
def test_pin_worker_moves_every_thread_including_ones_started_before(tmp_path: Path) -> None:
    usable = cpus.usable_cpus()
    assert len(usable) >= 2, "this test needs two CPUs (CI has them)"
    assert cpus.claim_cpu(tmp_path) == usable[0]  # held here: the child gets the next slot
    script = textwrap.dedent("""
        import os, sys, threading
        from pathlib import Path
        from serving import cpus
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        print(sorted(os.sched_getaffinity(t.native_id)))
        got = cpus.pin_worker(Path(sys.argv[1]))
        later = threading.Thread(target=lambda: print(sorted(os.sched_getaffinity(0))))
        later.start(); later.join()
        print(got, sorted(os.sched_getaffinity(t.native_id)), sorted(os.sched_getaffinity(0)))
        stop.set()
    """)
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    ).stdout.splitlines()
    cpu = usable[1]
    assert out == [str(usable), f"[{cpu}]", f"{cpu} [{cpu}] [{cpu}]"]
