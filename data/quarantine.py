"""Stored records that cannot be used, set aside instead of stopping a job.

Training and start-up read files that were written earlier: the shop's events, items and
users, the event log. A record there that is unreadable or out of range (written before the
bounds existed, or by hand) must not stop either. Readers skip it, count it, log where it is,
and append it here: one ``quarantined-records.jsonl`` in the folder of the file it came from,
one JSON
object a line (``file``, ``record``, ``reason``, ``raw``, ``at``). ``record`` is the 1-based
number of the record in its file (the line of a JSON Lines file without blank lines, the data
row of a CSV file, the row of a Parquet file). ``shoprank quarantine`` lists them.

The same record read again (every training run reads the same files) is not added twice.
Writing the quarantine is best effort: a read-only folder only loses the listing, never the
job.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

QUARANTINE_FILE = "quarantined-records.jsonl"
MAX_RAW_CHARS = 2_000
"""A quarantined record's raw text is cut to this length (a poison line may be huge)."""


@dataclass(frozen=True)
class Quarantined:
    """One record set aside: its file, its number there, why, and what it held."""

    file: str
    record: int
    reason: str
    raw: str
    at: str = ""

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.file, self.record, self.reason)


def quarantine_path(source: Path | str) -> Path:
    """Where records of ``source`` are set aside (beside it)."""
    return Path(source).parent / QUARANTINE_FILE


def read_quarantine(path: Path | str) -> Iterator[Quarantined]:
    """The entries of one quarantine file (unreadable lines of it are skipped)."""
    p = Path(path)
    if not p.exists():
        return
    with p.open("rb") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
                yield Quarantined(
                    file=str(obj["file"]), record=int(obj["record"]), reason=str(obj["reason"]),
                    raw=str(obj.get("raw", "")), at=str(obj.get("at", "")),
                )
            except (ValueError, KeyError, TypeError):
                continue


def set_aside(source: Path | str, entries: Iterable[tuple[int, str, str]]) -> int:
    """Quarantine ``(record number, reason, raw text)`` entries of ``source``; returns how many
    were new. Logs one warning per file with the first location and reason."""
    src = Path(source)
    items = [
        Quarantined(str(src), rec, reason, raw[:MAX_RAW_CHARS]) for rec, reason, raw in entries
    ]
    if not items:
        return 0
    first = items[0]
    log.warning(
        "%s: set aside %d unusable record(s), first record %d: %s (listed by "
        "`shoprank quarantine`)", src, len(items), first.record, first.reason,
    )
    target = quarantine_path(src)
    try:
        known = {q.key for q in read_quarantine(target)}
        now = datetime.now(UTC).isoformat(timespec="seconds")
        fresh = [q for q in items if q.key not in known]
        if not fresh:
            return 0
        lines = b"".join(
            json.dumps(
                {"file": q.file, "record": q.record, "reason": q.reason, "raw": q.raw, "at": now},
                ensure_ascii=False,
            ).encode("utf-8", "backslashreplace") + b"\n"
            for q in fresh
        )
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, lines)
        finally:
            os.close(fd)
        return len(fresh)
    except OSError as exc:
        log.warning("%s: the quarantine could not be written (%s); the records stay skipped",
                    target, exc)
        return 0
