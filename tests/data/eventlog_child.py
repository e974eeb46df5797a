"""Child process of the SIGKILL durability test: appends batches, acknowledges each on stdout.

Usage: python eventlog_child.py ROOT FIRST_BATCH N_BATCHES BATCH_SIZE
Batch ``i`` holds events ``b<i>-<j>`` spread over three days. The batch number is printed
(and flushed) only after ``append`` has returned.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from data.eventlog import EventLog
from data.models import Event

root, first, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0 = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
log = EventLog(root)
print("ready", flush=True)
for i in range(first, first + n):
    batch = [
        Event(
            event_id=f"b{i}-{j}",
            user_id=f"u{j % 7}",
            item_id=f"i{j}",
            type="view",
            timestamp=t0 + timedelta(hours=(i * size + j) % 60),
        )
        for j in range(size)
    ]
    log.append(batch)
    print(i, flush=True)
