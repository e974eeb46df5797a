"""RetailRocket ``events.csv`` → view / add_to_cart / purchase events.

Layout: header ``timestamp,visitorid,event,itemid,transactionid``; ``timestamp`` in
milliseconds since 1970 (UTC); ``event`` ∈ view, addtocart, transaction; ``transactionid``
only on transactions. ``event_id = "rr-<visitor>-<item>-<event>-<timestamp>[-<transaction>]"``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from core.errors import describe
from data.errors import LoaderError
from data.formats import open_text
from data.loaders import Reject
from data.models import Event

HEADER = ("timestamp", "visitorid", "event", "itemid", "transactionid")
EVENT_TYPES = {"view": "view", "addtocart": "add_to_cart", "transaction": "purchase"}

log = logging.getLogger(__name__)


def iter_retailrocket(
    path: Path | str, *, on_reject: Callable[[Reject], None] | None = None
) -> Iterator[Event]:
    p = Path(path)
    lines = open_text(p)
    header_seen = False
    for n, line in lines:
        if not line.strip():
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        if not header_seen:
            if tuple(fields) != HEADER:
                raise LoaderError(f"{p}: the first line must be the header {','.join(HEADER)}")
            header_seen = True
            continue
        try:
            yield _event(fields)
        except ValidationError as exc:
            _reject(on_reject, Reject(str(p), n, describe(exc), line))
        except ValueError as exc:
            _reject(on_reject, Reject(str(p), n, str(exc), line))
    if not header_seen:
        raise LoaderError(f"{p}: empty file; expected the header {','.join(HEADER)}")


def _event(fields: list[str]) -> Event:
    if len(fields) != len(HEADER):
        raise ValueError(f"expected {len(HEADER)} fields ({','.join(HEADER)}), found {len(fields)}")
    ts, visitor, kind, item, tx = fields
    if kind not in EVENT_TYPES:
        raise ValueError(f"event {kind!r} is not one of view, addtocart, transaction")
    try:
        ms = int(ts)
        when = datetime.fromtimestamp(ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"timestamp {ts!r} is not milliseconds since 1970") from None
    if kind == "transaction" and not tx:
        raise ValueError("a transaction needs a transactionid")
    suffix = f"-{tx}" if tx else ""
    return Event(
        event_id=f"rr-{visitor}-{item}-{kind}-{ms}{suffix}",
        user_id=visitor,
        item_id=item,
        type=EVENT_TYPES[kind],
        timestamp=when,
    )  # type: ignore[arg-type]


def _reject(cb: Callable[[Reject], None] | None, r: Reject) -> None:
    if cb is None:
        log.warning("%s:%d: %s", r.file, r.line, r.reason)
    else:
        cb(r)
