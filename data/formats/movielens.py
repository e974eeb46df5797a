"""MovieLens ratings → ``rate`` events.

Layouts (detected from the first line):

* ``u.data`` (MovieLens 100K): ``user item rating timestamp``, tab separated, no header;
* ``ratings.dat`` (1M/10M): ``user::item::rating::timestamp``;
* ``ratings.csv`` (20M/25M/latest): header ``userId,movieId,rating,timestamp``.

Each rating becomes ``Event(type="rate", value=rating, timestamp=<epoch seconds, UTC>)`` with
``event_id = "ml-<user>-<item>-<timestamp>"`` (the same file always gives the same ids).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from core.errors import describe
from data.errors import LoaderError
from data.formats import open_text
from data.loaders import Reject
from data.models import Event

CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
_WS = re.compile(r"[\t ]+")


def _event(user: str, item: str, rating: str, ts: str) -> Event:
    try:
        value = float(rating)
    except ValueError:
        raise ValueError(f"rating {rating!r} is not a number") from None
    try:
        seconds = int(ts)
    except ValueError:
        raise ValueError(f"timestamp {ts!r} is not an integer (seconds since 1970)") from None
    try:
        when = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"timestamp {ts!r} is out of range") from None
    return Event(
        event_id=f"ml-{user}-{item}-{seconds}",
        user_id=user,
        item_id=item,
        type="rate",
        value=value,
        timestamp=when,
    )


def iter_movielens(
    path: Path | str, *, on_reject: Callable[[Reject], None] | None = None
) -> Iterator[Event]:
    p = Path(path)
    layout: str | None = None
    for n, line in open_text(p):
        if not line.strip():
            continue
        if layout is None:
            head = [c.strip() for c in line.split(",")]
            if tuple(head[:4]) == CSV_HEADER:
                layout = "csv"
                continue
            if head[0].lower() in ("userid", "user_id", "user"):
                raise LoaderError(f"{p}: header must be {','.join(CSV_HEADER)}, not {line!r}")
            layout = "dat" if "::" in line else "tsv"
        if layout == "csv":
            fields = line.split(",")
        elif layout == "dat":
            fields = line.split("::")
        else:
            fields = _WS.split(line.strip())
        fields = [f.strip() for f in fields]
        try:
            if len(fields) != 4:
                raise ValueError(
                    f"expected 4 fields (user item rating timestamp), found {len(fields)}"
                )
            yield _event(*fields)
        except ValidationError as exc:
            _reject(on_reject, Reject(str(p), n, describe(exc), line))
        except ValueError as exc:
            _reject(on_reject, Reject(str(p), n, str(exc), line))


def _reject(cb: Callable[[Reject], None] | None, r: Reject) -> None:
    if cb is None:
        import logging

        logging.getLogger(__name__).warning("%s:%d: %s", r.file, r.line, r.reason)
    else:
        cb(r)
