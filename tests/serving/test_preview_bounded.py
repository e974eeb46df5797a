"""A rule preview samples recent traffic from the end of the event log: what it reads does not
grow with the log (bench/preview.py has the times; this checks the bound, not a time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from data.models import Event, EventContext
from tests.serving.conftest import ADMIN_KEY, start_live

LOG_EVENTS = 60_000
SAMPLE_LAST = 100


def bytes_read() -> int:
    """Bytes this process has passed to read() and pread() so far (/proc/self/io rchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


DAY = (datetime.now(UTC) - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
"""Every event of the test on one day: one day file, its tail the newest traffic."""


def old_traffic(n: int) -> list[Event]:
    start = DAY
    return [
        Event(event_id=f"old-{k}", user_id=f"u{k % 400}", type="search",
              timestamp=start + timedelta(milliseconds=k),
              context=EventContext(query="old query nobody searches now"))
        if k % 10 == 0 else
        Event(event_id=f"old-{k}", user_id=f"u{k % 400}", item_id=f"i{k % 800}", type="view",
              timestamp=start + timedelta(milliseconds=k))
        for k in range(n)
    ]


def test_a_preview_reads_the_tail_of_the_log_not_the_log(restart_home: Path) -> None:
    server, lv = start_live(restart_home)
    try:
        events = lv.services.events  # the event store the API appends to
        old = old_traffic(LOG_EVENTS)
        for k in range(0, LOG_EVENTS, 10_000):
            events.append(old[k:k + 10_000])
        recent = [Event(event_id=f"new-{k}", user_id=f"u{k}", type="search",
                        timestamp=DAY + timedelta(hours=1), context=EventContext(query="lantern"))
                  for k in range(4 * SAMPLE_LAST)]
        events.append(recent)
        days = sorted(lv.services.settings.events_dir.glob("*.jsonl"))
        assert [d.stem for d in days] == [DAY.date().isoformat()]
        size = days[0].stat().st_size
        assert size > 6 * 2**20, size  # much larger than what a preview may read
        body = {"rule": {"name": "Pin in search", "condition": {"contexts": ["search"]},
                         "actions": [{"type": "bury", "filter": {"brands": ["ACME"]},
                                      "weight": 1}]},
                "surface": "search", "query": "lantern", "sample_size": 5,
                "sample_last": SAMPLE_LAST}
        with lv.client(ADMIN_KEY) as admin:
            admin.post("/v1/rules/preview", json=body).raise_for_status()  # warm what it loads
            before = bytes_read()
            r = admin.post("/v1/rules/preview", json=body)
            read = bytes_read() - before
        assert r.status_code == 200, r.text
        impact = r.json()["impact"]
        # sampled from the newest events only: the new searches, none of the old ones
        assert impact is not None and impact["sampled"] == 1, impact
        assert read < 2 * 2**20, (read, size)  # 4 × sample_last lines from the end: one 1 MiB read
    finally:
        server.stop()
        lv.services.close()
