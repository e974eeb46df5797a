"""``shoprank scheduler``: retrain on the schedule in settings, in one process only.

Every replica may run a scheduler; the one holding ``<models_dir>/.scheduler.lock`` (an
exclusive ``flock``, released by the kernel when its process dies) retrains, the others stand
by and retry the lock, so one takes over when the active one stops. When the next run is due
is counted from the newest run of the registry's history (``runs.jsonl``), so a restarted or
replacement scheduler keeps the rhythm instead of retraining at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

from training.config import TrainConfig
from training.errors import ConfigError
from training.retrain import Gate, RetrainBusyError, RetrainRun, read_runs, retrain
from training.store_source import StoreSource

log = logging.getLogger(__name__)

SCHEDULER_LOCK = ".scheduler.lock"

Status = Literal["active", "standby"]


@dataclass(frozen=True)
class Schedule:
    every: timedelta
    gate: Gate

    @classmethod
    def from_minutes(cls, minutes: float, gate: Gate) -> Schedule:
        if minutes <= 0:
            raise ConfigError("no retrain schedule: set retrain_schedule_minutes "
                              "(SHOPRANK_RETRAIN_SCHEDULE_MINUTES) to a positive number")
        return cls(timedelta(minutes=minutes), gate)


def next_due(models_dir: Path, every: timedelta) -> datetime:
    """When the next run is due: the newest recorded run's start + ``every`` (now if none)."""
    runs = read_runs(models_dir, limit=1)
    if not runs:
        return datetime.now(UTC)
    return datetime.fromisoformat(runs[0]["started_at"]) + every


@contextmanager
def scheduler_lock(models_dir: Path) -> Iterator[IO[str] | None]:
    """The scheduler lock if free (else ``None``); held until the block ends."""
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / SCHEDULER_LOCK, "a+") as fh:  # closing it releases the lock
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        yield fh


def run_scheduler(
    cfg_factory: Callable[[], TrainConfig],
    models_dir: Path,
    schedule: Schedule,
    *,
    events_dir: Path | None = None,
    stop: threading.Event | None = None,
    once: bool = False,
    poll_seconds: float = 30.0,
    on_status: Callable[[Status], None] | None = None,
    on_run: Callable[[RetrainRun], None] | None = None,
    stores: StoreSource | None = None,
) -> int:
    """Retrain whenever due until ``stop`` is set; returns the number of runs made.

    ``once``: take the lock if free, run if due, and return (for cron or a test).
    ``cfg_factory`` is called before each run, so a run reads the data as it is then.
    """
    stop = stop or threading.Event()
    runs = 0
    status: Status | None = None
    while not stop.is_set():
        with scheduler_lock(models_dir) as held:
            now: Status = "standby" if held is None else "active"
            if now != status:
                status = now
                log.info("scheduler %s (pid %d)", status, os.getpid())
                if on_status is not None:
                    on_status(status)
            while held is not None and not stop.is_set():
                due = next_due(models_dir, schedule.every)
                wait = (due - datetime.now(UTC)).total_seconds()
                if wait <= 0:
                    try:
                        run = retrain(cfg_factory(), models_dir, gate=schedule.gate,
                                      events_dir=events_dir,
                                      trigger="schedule", stores=stores)
                    except RetrainBusyError as exc:  # a manual retrain is running
                        log.info("%s", exc)
                        wait = poll_seconds
                    else:
                        runs += 1
                        if on_run is not None:
                            on_run(run)
                        continue
                if once:
                    return runs
                stop.wait(min(max(wait, 0.05), poll_seconds))
        if once:
            return runs
        stop.wait(poll_seconds)  # standby: try the lock again
    return runs
