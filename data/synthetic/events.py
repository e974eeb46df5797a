"""A chunk's events as numpy columns, and their :data:`~data.event_table.EVENT_SCHEMA` table.

The simulator appends events stage by stage (searches, impressions, clicks, …) in any order;
:func:`event_table` drops those after the horizon, orders them by time (ties in funnel order)
and writes the ids, the request id of listed events, the home feed's experiment variant and
the session's channel, device and surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from data.event_table import EVENT_SCHEMA
from data.synthetic.catalog import Catalog
from data.synthetic.spec import ShopSpec

CHANNELS = ("app", "web")
DEVICES = ("ios", "android", "desktop", "mobile-web")
SURFACES = ("home", "search")
EXPERIMENT = "home-feed-2026"

# Event type codes in funnel order (used to order events that share a timestamp).
TYPES = (
    "search",
    "impression",
    "click",
    "view",
    "favorite",
    "share",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "rate",
    "refund",
)
_T = {name: i for i, name in enumerate(TYPES)}


@dataclass(frozen=True)
class Sessions:
    """A chunk's sessions (arrays by session number within the chunk)."""

    count: int
    user: np.ndarray
    t0: np.ndarray
    """Start, in seconds after the spec's start."""
    leaf: np.ndarray
    """The intent leaf."""
    is_search: np.ndarray
    seg_key: np.ndarray
    use_seg: np.ndarray
    """Whether a searched variant narrows the intent to leaf × variant (``seg_key``)."""
    qidx: np.ndarray
    """The query, as an index into the catalogue's query vocabulary."""
    channel: np.ndarray
    device: np.ndarray


class EventColumns:
    """The chunk's events as lists of numpy columns, appended to in any order."""

    def __init__(self) -> None:
        self.cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("t", "sess", "item", "type", "value", "pos", "req", "q")
        }

    def emit(
        self,
        t: np.ndarray,
        sess: np.ndarray,
        item: np.ndarray | int,
        type_: str,
        value: np.ndarray | None = None,
        pos: np.ndarray | None = None,
        req: np.ndarray | bool = False,
        q: np.ndarray | bool = False,
    ) -> None:
        E = self.cols
        k = len(t)
        E["t"].append(t.astype(np.int64))
        E["sess"].append(sess.astype(np.int64))
        E["item"].append(np.broadcast_to(np.asarray(item, dtype=np.int64), (k,)))
        E["type"].append(np.full(k, _T[type_], dtype=np.int8))
        E["value"].append(np.full(k, np.nan) if value is None else value.astype(float))
        E["pos"].append(np.full(k, -1, dtype=np.int64) if pos is None else pos.astype(np.int64))
        E["req"].append(np.broadcast_to(np.asarray(req, dtype=bool), (k,)))
        E["q"].append(np.broadcast_to(np.asarray(q, dtype=bool), (k,)))


def _ids(prefix: str, nums: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(nums, pa.int64()), pa.string()), "")


def event_table(
    spec: ShopSpec,
    cat: Catalog,
    ses: Sessions,
    ev: EventColumns,
    user_ids: list[str],
    ids_from: tuple[int, int, int],
) -> pa.Table:
    """The events as an :data:`EVENT_SCHEMA` table, in time order, without those after the
    horizon. ``user_ids`` are the chunk's users by local number; ``ids_from`` = (first user,
    first session, first event) number of the chunk."""
    u0, s0, e0 = ids_from
    horizon = spec.days * 86400
    t = np.concatenate(ev.cols["t"])
    keep = t < horizon
    cols = {k: np.concatenate(v)[keep] for k, v in ev.cols.items()}
    order = np.lexsort((cols["pos"], cols["type"], cols["sess"], cols["t"]))
    cols = {k: v[order] for k, v in cols.items()}
    N = len(order)
    sess = cols["sess"]
    user_local = ses.user[sess]
    is_feed = cols["req"] & ~ses.is_search[sess]
    u_global = u0 + np.arange(len(user_ids))
    u_variant = ((u_global * 2654435761) >> 7) % 2

    item = cols["item"]
    start_us = int(spec.start_dt.timestamp()) * 1_000_000
    qi = pa.array(ses.qidx[sess], mask=~cols["q"])
    null_str = pa.nulls(N, pa.string())
    seed = spec.seed
    return pa.Table.from_arrays(
        [
            _ids(f"s{seed}-e", e0 + np.arange(N)),
            pa.array(user_ids, pa.string()).take(pa.array(user_local)),
            cat.ids.take(pa.array(item, mask=item < 0)),
            pa.array(TYPES, pa.string()).take(pa.array(cols["type"].astype(np.int64))),
            pa.array(start_us + cols["t"] * 1_000_000, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            pa.array(cols["value"], mask=np.isnan(cols["value"])),
            _ids(f"s{seed}-s", s0 + sess),
            cat.queries.take(qi),
            pa.array(cols["pos"], mask=cols["pos"] < 0).cast(pa.int32()),
            pc.if_else(pa.array(cols["req"]), _ids(f"s{seed}-r", s0 + sess), null_str),
            pc.if_else(pa.array(is_feed), pa.scalar(EXPERIMENT), null_str),
            pc.if_else(
                pa.array(is_feed), pa.array(np.array(["A", "B"])[u_variant[user_local]]), null_str
            ),
            pa.array(CHANNELS).take(pa.array(ses.channel[sess])),
            pa.array(DEVICES).take(pa.array(ses.device[sess])),
            pc.if_else(
                pa.array(cols["req"]),
                pa.array(SURFACES).take(pa.array(ses.is_search[sess].astype(np.int64))),
                null_str,
            ),
        ],
        schema=EVENT_SCHEMA,
    )
