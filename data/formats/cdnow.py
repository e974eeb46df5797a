"""The CDNOW transactions shipped inside the PyPI ``lifetimes`` package, as a shop order log.

``lifetimes/datasets/CDNOW_master.txt``: 69,659 purchases by 23,570 customers of the CD
retailer CDNOW, 1997-01-01 to 1998-06-30; whitespace separated ``customer_id date
number_of_cds dollar_value`` (date ``YYYYMMDD``, no time, no product ids). Nothing is
downloaded: the file is read from the installed package (``pip install lifetimes``; its code
is never imported).

:func:`write_order_log` turns it into what a shop's order export looks like to
``shoprank load events``: a CSV in the event schema, one ``purchase`` per line, ``value`` =
dollars paid, ``timestamp`` = the day (00:00 UTC), ``item_id`` = ``"cd"`` (the data names no
products; the number of CDs is not kept). ``shoprank sample-data cdnow OUT.csv`` runs it.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from data.errors import LoaderError
from data.formats import open_text

ORDER_LOG_COLUMNS = ("event_id", "user_id", "item_id", "type", "timestamp", "value")


def shipped_path() -> Path:
    """Where the installed ``lifetimes`` package keeps ``CDNOW_master.txt``."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise LoaderError("the CDNOW data ships in the lifetimes package: pip install lifetimes")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    if not path.is_file():
        raise LoaderError(f"{path}: missing from the installed lifetimes package")
    return path


def write_order_log(out: Path, source: Path | None = None) -> int:
    """Write the order-log CSV; returns the number of orders. Lines that are not four
    fields are skipped (the file has none; the loaders validate every written row again)."""
    src = source or shipped_path()
    n = 0
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(ORDER_LOG_COLUMNS)
        for lineno, line in open_text(src):
            parts = line.split()
            if len(parts) != 4 or not parts[1].isdigit():
                continue  # the header line
            customer, day, _cds, dollars = parts
            ts = f"{day[:4]}-{day[4:6]}-{day[6:]}T00:00:00Z"
            w.writerow([f"cdnow-{customer}-{day}-{lineno}", customer, "cd", "purchase", ts,
                        dollars])
            n += 1
    return n
