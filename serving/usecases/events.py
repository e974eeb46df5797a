"""Storefront events (``POST /v1/events``): stored durably once (idempotent by ``event_id``),
then applied to the shopper state every process reads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from data.models import Event
from serving.errors import Unavailable

log = logging.getLogger(__name__)


class _Seen(Protocol):
    def claim(self, ids: Sequence[str]) -> list[bool]: ...

    def release(self, ids: Sequence[str]) -> None: ...


class _Sink(Protocol):
    def append(self, events: Sequence[Event]) -> object: ...


@dataclass(frozen=True, slots=True)
class EventIngest:
    seen: _Seen
    """Recently accepted ids (spares the store's index the look-up of a retried batch)."""
    sink: _Sink
    """The event store."""
    apply: Callable[[Sequence[Event]], None]
    """Into the shopper state (recent history, purchases, live counts)."""
    counted: Callable[[int], None] | None = None
    """The accepted-events metric."""

    def store(self, events: list[Event]) -> list[Event]:
        """Store the events not stored before and apply them; returns those. A store that
        fails stores nothing of the batch (503: the client retries it whole)."""
        flags = self.seen.claim([e.event_id for e in events])
        fresh = [e for e, new in zip(events, flags, strict=True) if new]
        if not fresh:
            return []
        try:
            result = self.sink.append(fresh)
        except Exception as exc:
            self.seen.release([e.event_id for e in fresh])
            log.exception("event log write failed")
            raise Unavailable(
                f"events could not be written to the event log ({exc}); retry the batch"
            ) from exc
        stored = getattr(result, "accepted", None)
        if stored is not None:  # the store's own idempotency index is the authority
            ids = set(stored)
            fresh = [e for e in fresh if e.event_id in ids]
        self.apply(fresh)
        if self.counted is not None:
            self.counted(len(fresh))
        return fresh
