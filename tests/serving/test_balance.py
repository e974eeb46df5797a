"""The workers of one server even out their active connections (:mod:`serving.balance`): a
worker holding more than its share closes one connection at a time, and the client's
reconnection may land on another worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serving.balance import WorkerLoads


def _move(loads: dict[str, WorkerLoads], held: dict[str, list[tuple[str, int]]], ms: int,
          step: int = 5, start: float = 0.0) -> dict[str, int]:
    """Every connection sends a request each ``step`` ms for ``ms`` ms; a closed connection
    reconnects to the other worker (the worst case for the closer is a fresh port on the
    peer). Returns how many connections each worker closed."""
    closed = dict.fromkeys(loads, 0)
    port = 10_000
    for t in range(0, ms, step):
        for name, keys in held.items():
            other = next(n for n in held if n != name)
            for key in list(keys):
                if loads[name].should_close(key, start + t / 1000):
                    closed[name] += 1
                    keys.remove(key)
                    port += 1
                    held[other].append(("10.0.0.9", port))
    return closed


def test_the_busier_worker_closes_until_both_hold_their_share(tmp_path: Path) -> None:
    loads = {n: WorkerLoads(tmp_path, n) for n in ("a", "b")}
    held = {"a": [("10.0.0.1", p) for p in range(6)], "b": [("10.0.0.1", 100), ("10.0.0.1", 101)]}
    closed = _move(loads, held, ms=400)
    assert {n: len(k) for n, k in held.items()} == {"a": 4, "b": 4}
    assert closed == {"a": 2, "b": 0}  # no connection moved back and forth
    assert loads["a"].share == loads["b"].share == 4


def test_an_odd_count_and_a_worker_alone_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "odd").mkdir()
    loads = {n: WorkerLoads(tmp_path / "odd", n) for n in ("a", "b")}
    held = {"a": [("h", p) for p in range(4)], "b": [("h", p) for p in range(10, 13)]}
    assert _move(loads, held, ms=300) == {"a": 0, "b": 0}  # 4 and 3: each within ceil(7/2)
    alone = WorkerLoads(tmp_path, "solo")
    assert not any(alone.should_close(("h", p), t / 1000) for t in range(0, 300, 5)
                   for p in range(8))


def test_an_idle_peer_counts_as_holding_nothing(tmp_path: Path) -> None:
    """A worker whose clients went away counted nothing lately: it holds no active
    connection, whatever its file last said, and takes its share of the busy one's."""
    loads = {n: WorkerLoads(tmp_path, n) for n in ("idle", "busy")}
    before = {"idle": [("h", p) for p in range(4)], "busy": [("h", p) for p in range(4, 8)]}
    assert _move(loads, before, ms=200) == {"idle": 0, "busy": 0}
    assert loads["idle"].active == 4  # then its clients leave, and the busy one gets 8
    held: dict[str, list[tuple[str, int]]] = {"idle": [], "busy": [("h", p) for p in range(8)]}
    closed = _move(loads, held, ms=600, start=5.0)
    assert closed == {"idle": 0, "busy": 4}
    assert {n: len(k) for n, k in held.items()} == {"idle": 4, "busy": 4}


def test_a_dead_workers_file_is_removed_and_not_counted(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = WorkerLoads(tmp_path, gone.stdout.strip())  # a file named by a pid that has exited
    dead.should_close(("h", 1), 0.0)
    live = WorkerLoads(tmp_path, "live")
    keys = [("h", 10 + p) for p in range(4)]
    assert not any(live.should_close(k, t / 1000) for t in range(0, 200, 5) for k in keys)
    assert live.share == 4  # one worker: its share is all of them
    assert not (tmp_path / f"{dead.name}.load").exists()
