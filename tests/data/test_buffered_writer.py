"""BufferedWriter: rows appended by requests, written in batches by its own thread."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

import pytest

from core.threads import BACKGROUND_NICE
from data.buffered_table import BufferedWriter


class Down(Exception):
    """Stands for a store that is down (the writer's ``errors``)."""


def test_a_refused_row_is_dropped_alone_and_the_thread_keeps_writing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    written: list[str] = []
    cond = threading.Condition()

    def write(rows: list[str]) -> None:
        if any("\x00" in r for r in rows):
            raise ValueError("invalid byte sequence 0x00")  # what PostgreSQL says
        with cond:
            written.extend(rows)
            cond.notify_all()

    def wait_for(n: int) -> bool:
        with cond:
            return cond.wait_for(lambda: len(written) >= n, timeout=10)

    w: BufferedWriter[str] = BufferedWriter(write, name="t", errors=(Down,), flush_seconds=3600,
                                            batch=3, encode=str.upper)
    with caplog.at_level(logging.ERROR):
        for r in ("a", "b\x00", "c"):  # the third fills the batch: the thread writes it
            w.append(r)
        assert wait_for(2)
    assert written == ["A", "C"]  # encoded on append; the bad row alone dropped
    assert "dropped a row" in caplog.text
    for r in ("d", "e", "f"):
        w.append(r)
    assert wait_for(5) and written == ["A", "C", "D", "E", "F"]  # the thread lives on
    w.close()


def test_a_store_that_is_down_keeps_the_rows_for_the_next_try() -> None:
    down = True
    written: list[str] = []

    def write(rows: list[str]) -> None:
        if down:
            raise Down("connection refused")
        written.extend(rows)

    w: BufferedWriter[str] = BufferedWriter(write, name="t", errors=(Down,), flush_seconds=3600)
    w.append("a")
    w.append("b")
    with pytest.raises(Down):
        w.flush()
    down = False
    w.flush()
    assert written == ["a", "b"]
    w.close()


def test_a_store_that_stays_down_never_makes_the_buffer_grow_past_its_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = True
    written: list[int] = []

    def write(rows: list[int]) -> None:
        if down:
            raise Down("connection refused")
        written.extend(rows)

    w: BufferedWriter[int] = BufferedWriter(write, name="t", errors=(Down,), flush_seconds=3600,
                                            batch=10, max_rows=100)
    with caplog.at_level(logging.WARNING):
        for k in range(130):
            w.append(k)
            if k % 40 == 39:  # failed writes put their rows back, within the bound
                with pytest.raises(Down):
                    w.flush()
    assert "oldest dropped so far" in caplog.text
    down = False
    w.flush()
    w.close()
    # the 100 newest written, in order; the 30 oldest dropped and counted (however the
    # writer's own thread's failed tries interleaved with the appends)
    assert written == list(range(30, 130))
    assert w.dropped == 30


def test_a_bound_below_one_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        BufferedWriter(lambda rows: None, name="t", errors=(Down,), batch=500, max_rows=100)


def _nice(tid: int) -> int:
    """A thread's nice value, from /proc (field 19 of its stat line)."""
    stat = open(f"/proc/self/task/{tid}/stat").read()
    return int(stat.rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_the_writer_thread_runs_at_background_priority_and_requests_do_not() -> None:
    seen: list[int] = []

    def write(rows: list[str]) -> None:
        seen.append(threading.get_native_id())

    w: BufferedWriter[str] = BufferedWriter(write, name="t", errors=(Down,), flush_seconds=60)
    try:
        w.append("a")
        w.flush()  # on the caller's thread: its priority is left alone
        assert seen == [threading.get_native_id()]
        assert _nice(threading.get_native_id()) == os.getpriority(os.PRIO_PROCESS, 0)
        tid = w._thread.native_id
        assert tid is not None
        deadline = time.monotonic() + 10
        while _nice(tid) != BACKGROUND_NICE:  # set by the thread as it starts
            assert time.monotonic() < deadline, _nice(tid)
            time.sleep(0.01)
    finally:
        w.close()
