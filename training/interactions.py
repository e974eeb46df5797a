"""Events → the training data every model fits on.

Two steps, both vectorized (pyarrow + numpy; never a dense user × item array):

1. :func:`encode_events` turns an events table (``data.event_table.EVENT_SCHEMA``) into an
   :class:`EventFrame`: integer codes for users, items, types and baskets, times in seconds.
   Here duplicates (same ``event_id``) and users without consent are dropped.
2. :func:`build_interactions` weighs the events (:class:`MatrixConfig`: per-type weights,
   ratings scaled by value, refunds cancel purchases, exponential time decay with a
   half-life), sums them per (user, item) into a CSR matrix, applies minimum-count filters
   and returns :class:`Interactions` with the id ↔ index vocabularies.

Splits (``training.split``) cut an ``EventFrame`` in two, so the train side is built with
the same function and the test side becomes a relevance matrix (:func:`relevance_matrix`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from data.models import EVENT_TYPES, Item, User
from models.errors import TrainingDataError
from models.interactions import (
    TYPE_CODE,
    Interactions,
    ItemFeatures,
    MatrixConfig,
    TrainEvents,
)
from models.vocab import Vocabulary

log = logging.getLogger(__name__)

DAY = 86_400.0


@dataclass(frozen=True)
class EventFrame:
    """Encoded events: parallel arrays plus the vocabularies their codes point into.

    ``item`` is ``-1`` for events without an item (search); ``basket`` is ``-1`` without a
    session/order; ``value`` is NaN when absent; ``ts`` is seconds since the Unix epoch.
    """

    user: np.ndarray  # int32 codes into user_ids
    item: np.ndarray  # int32 codes into item_ids
    type: np.ndarray  # int8 codes into EVENT_TYPES
    ts: np.ndarray  # float64 seconds
    value: np.ndarray  # float32
    basket: np.ndarray  # int32 codes (session ids), -1 if none
    user_ids: np.ndarray  # object array of str
    item_ids: np.ndarray  # object array of str

    def __len__(self) -> int:
        return len(self.user)

    def take(self, mask_or_index: np.ndarray) -> EventFrame:
        """A subset of the events; vocabularies are shared (codes stay valid)."""
        return replace(
            self,
            user=self.user[mask_or_index],
            item=self.item[mask_or_index],
            type=self.type[mask_or_index],
            ts=self.ts[mask_or_index],
            value=self.value[mask_or_index],
            basket=self.basket[mask_or_index],
        )

    @property
    def window(self) -> tuple[float, float]:
        if len(self) == 0:
            return (math.nan, math.nan)
        return float(self.ts.min()), float(self.ts.max())


@dataclass(frozen=True)
class Catalog:
    """The item catalog as training sees it (id → features)."""

    item_ids: tuple[str, ...]
    features: ItemFeatures

    @classmethod
    def from_items(cls, items: Iterable[Item]) -> Catalog:
        items = list(items)
        return cls(
            item_ids=tuple(i.item_id for i in items),
            features=ItemFeatures(
                titles=tuple(i.title for i in items),
                brands=tuple(i.brand or "" for i in items),
                categories=tuple(tuple(i.category) for i in items),
                tags=tuple(tuple(i.tags) for i in items),
                created_at=np.asarray([i.created_at.timestamp() for i in items], np.float64),
            ),
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> Catalog:
        """From an Arrow table of items (``item_id``, ``title``, ``brand``, ``category`` and
        ``tags`` as lists of strings, ``created_at`` as a timestamp); missing columns are blank."""
        n = table.num_rows

        def col(name: str) -> list:
            return table.column(name).to_pylist() if name in table.column_names else [None] * n

        created = np.full(n, np.nan)
        if "created_at" in table.column_names:
            ts = table.column("created_at")
            if pa.types.is_timestamp(ts.type):
                created = _seconds(ts)
                created[np.asarray(ts.is_null())] = np.nan
        return cls(
            item_ids=tuple(str(i) for i in col("item_id")),
            features=ItemFeatures(
                titles=tuple(t or "" for t in col("title")),
                brands=tuple(b or "" for b in col("brand")),
                categories=tuple(tuple(c or ()) for c in col("category")),
                tags=tuple(tuple(t or ()) for t in col("tags")),
                created_at=created,
            ),
        )

    def aligned(self, vocab: Vocabulary) -> ItemFeatures:
        """Features in ``vocab`` order; items missing from the catalog get blanks."""
        pos = {iid: k for k, iid in enumerate(self.item_ids)}
        idx = np.asarray([pos.get(str(i), -1) for i in vocab.ids], dtype=np.int64)
        f = self.features

        def pick(seq: tuple, blank: object) -> tuple:
            return tuple(seq[k] if k >= 0 else blank for k in idx)

        created = np.full(len(idx), np.nan)
        ok = idx >= 0
        created[ok] = f.created_at[idx[ok]]
        return ItemFeatures(
            titles=pick(f.titles, ""),
            brands=pick(f.brands, ""),
            categories=pick(f.categories, ()),
            tags=pick(f.tags, ()),
            created_at=np.asarray(created, dtype=np.float64),
        )


# ---------------------------------------------------------------------------- encoding
def _encode(col: pa.ChunkedArray | pa.Array, values: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary-encode a string column → (int32 codes with -1 for null, unique values).

    With ``values=False`` the unique values are not turned into Python strings (the second
    item is then an empty array whose ``len`` is not meaningful; use the codes' maximum).
    """
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        enc = arr
    else:
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = arr.cast(pa.string())
        enc = pc.dictionary_encode(arr)
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int32)
    if not values:
        return codes, np.empty(len(enc.dictionary), dtype=np.int8)
    uniques = enc.dictionary.to_numpy(zero_copy_only=False).astype(object)
    return codes, uniques


def _seconds(col: pa.ChunkedArray) -> np.ndarray:
    t = col.type
    if pa.types.is_timestamp(t):
        us = col.cast(pa.timestamp("us", tz=t.tz), safe=False).cast(pa.int64())
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        us = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        return col.to_numpy().astype(np.float64)  # already epoch seconds
    else:
        raise TrainingDataError(f"timestamp: unsupported column type {t}")
    return us.to_numpy().astype(np.float64) / 1e6


def encode_events(
    table: pa.Table,
    *,
    users: Iterable[User] | None = None,
    no_consent: Iterable[str] | None = None,
    dedupe: bool = True,
    types: Iterable[str] | None = None,
) -> EventFrame:
    """An events table → :class:`EventFrame`.

    Drops duplicate ``event_id`` (first wins), events of users without consent (from
    ``users`` and/or the ``no_consent`` ids) and events of unknown types (logged).

    A duplicate is the same event delivered twice: same ``event_id`` *and* same user, item,
    type and time (what a retried batch or overlapping sources produce; the event log
    refuses a known id with other content). Only rows sharing those fields are compared by
    id, which keeps de-duplication cheap (hashing 20M distinct ids is most of a minute).
    ``types``: keep only these event types (e.g. those with a weight) — a large saving.
    """
    required = {"user_id", "item_id", "type", "timestamp"}
    missing = required - set(table.column_names)
    if missing:
        raise TrainingDataError(
            f"events table lacks columns {sorted(missing)}; expected the event schema "
            "(data.event_table.EVENT_SCHEMA)"
        )
    if types is not None:
        # Dropping unused types first (impressions are half of a shop's log) halves the rest.
        wanted = pa.array(sorted(set(types)), pa.string())
        table = table.filter(pc.is_in(table.column("type").cast(pa.string()), value_set=wanted))
    n = table.num_rows
    keep = np.ones(n, dtype=bool)
    user, user_ids = _encode(table.column("user_id"))
    item, item_ids = _encode(table.column("item_id"))
    tcodes, tnames = _encode(table.column("type"))
    type_map = np.asarray([TYPE_CODE.get(str(t), -1) for t in tnames], dtype=np.int8)
    etype = type_map[tcodes] if len(tnames) else np.zeros(n, np.int8)
    unknown = etype < 0
    if unknown.any():
        bad = sorted({str(t) for t in tnames if str(t) not in TYPE_CODE})
        log.warning("ignoring %d events of unknown types %s", int(unknown.sum()), bad)
        keep &= ~unknown

    blocked = set(no_consent or ())
    if users is not None:
        blocked |= {u.user_id for u in users if not u.consent}
    if blocked:
        blocked_mask = np.asarray(
            pc.is_in(pa.array(user_ids, pa.string()), value_set=pa.array(sorted(blocked),
                                                                          pa.string()))
        ).astype(bool)
        drop = blocked_mask[user]
        log.info("dropping %d events of %d users without consent",
                 int((drop & keep).sum()), int(blocked_mask.sum()))
        keep &= ~drop

    ts = _seconds(table.column("timestamp"))
    if dedupe and "event_id" in table.column_names and n:
        keep &= ~_duplicates(table.column("event_id"), user, item, tcodes, ts)
    if "value" in table.column_names:
        value = pc.fill_null(table.column("value").cast(pa.float32()), math.nan)
        value_np = value.to_numpy().astype(np.float32)
    else:
        value_np = np.full(n, np.nan, np.float32)
    if "session_id" in table.column_names:
        basket, _ = _encode(table.column("session_id"), values=False)
    else:
        basket = np.full(n, -1, np.int32)
    frame = EventFrame(
        user=user, item=item, type=etype, ts=ts, value=value_np, basket=basket,
        user_ids=user_ids, item_ids=item_ids,
    )
    return frame if keep.all() else frame.take(keep)


def _duplicates(
    event_ids: pa.ChunkedArray, user: np.ndarray, item: np.ndarray, tcodes: np.ndarray,
    ts: np.ndarray,
) -> np.ndarray:
    """Mask of rows repeating an earlier row's event id (and user, item, type, time)."""
    n = len(user)
    with np.errstate(over="ignore"):
        h = np.round(ts * 1e6).astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= user.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= (item.astype(np.int64) + 1).astype(np.uint64) * np.uint64(0x165667B19E3779F9)
        h ^= tcodes.astype(np.uint64) * np.uint64(0x27D4EB2F165667C5)
    order = np.argsort(h)
    hs = h[order]
    eq = hs[1:] == hs[:-1]
    dup = np.zeros(n, dtype=bool)
    if not eq.any():
        return dup
    in_run = np.zeros(n, dtype=bool)
    in_run[1:] |= eq
    in_run[:-1] |= eq
    cand = np.sort(order[in_run])
    ids = pc.take(event_ids, pa.array(cand))
    codes, _ = _encode(ids, values=False)
    # Within the candidates, the first row of each (event id, hash) wins.
    key = codes.astype(np.int64) * 1_000_003 + (h[cand] % np.uint64(1_000_003)).astype(np.int64)
    _, first = np.unique(key, return_index=True)
    later = np.ones(len(cand), dtype=bool)
    later[first] = False
    later &= codes >= 0
    dup[cand[later]] = True
    if dup.any():
        log.info("dropping %d duplicate events (same event_id)", int(dup.sum()))
    return dup


def users_without_consent(users: Iterable[User]) -> set[str]:
    return {u.user_id for u in users if not u.consent}


# ---------------------------------------------------------------------------- weighting
def event_weights(frame: EventFrame, config: MatrixConfig) -> np.ndarray:
    """Per-event weight before decay: type weight, ratings scaled, refunds applied."""
    wv = config.weight_vector()
    w = wv[frame.type].astype(np.float32)
    rate = frame.type == TYPE_CODE["rate"]
    if rate.any():
        v = np.nan_to_num(frame.value[rate], nan=0.0)
        w[rate] = np.where(v >= config.min_rating, w[rate] * v, 0.0)
    w[frame.item < 0] = 0.0
    if config.refunds_cancel_purchases:
        ref = (frame.type == TYPE_CODE["refund"]) & (frame.item >= 0)
        if ref.any():
            pur = (frame.type == TYPE_CODE["purchase"]) & (frame.item >= 0)
            n_items = max(1, len(frame.item_ids))
            pair = frame.user.astype(np.int64) * n_items + frame.item
            pur_pairs, pur_inv, pur_count = np.unique(pair[pur], return_inverse=True,
                                                      return_counts=True)
            ref_pairs, ref_count = np.unique(pair[ref], return_counts=True)
            pos = np.searchsorted(ref_pairs, pur_pairs)
            pos = np.minimum(pos, len(ref_pairs) - 1)
            refunded = np.where(ref_pairs[pos] == pur_pairs, ref_count[pos], 0)
            # Each refund cancels one purchase: keep (purchases - refunds) / purchases of each.
            share = np.clip(pur_count - refunded, 0, None) / pur_count
            w[pur] *= share[pur_inv].astype(np.float32)
    return w


def decay_factors(
    ts: np.ndarray, reference_time: float, half_life_days: float | None
) -> np.ndarray:
    """``0.5 ** (age / half_life)``; events after the reference time count fully."""
    if half_life_days is None:
        return np.ones(len(ts), dtype=np.float32)
    age = np.clip(reference_time - ts, 0.0, None)
    return np.exp2(-age / (half_life_days * DAY)).astype(np.float32)


def _filter_counts(m: sp.csr_matrix, min_user: int, min_item: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of users and items that survive the minimum-count filters."""
    users = np.ones(m.shape[0], dtype=bool)
    items = np.ones(m.shape[1], dtype=bool)
    if min_user <= 1 and min_item <= 1:
        return np.diff(m.indptr) > 0, np.bincount(m.indices, minlength=m.shape[1]) > 0
    b = m.copy()
    b.data = np.ones_like(b.data)
    for _ in range(10):  # a few rounds reach a fixed point in practice
        sub = b[users][:, items]
        u_ok = np.asarray(sub.sum(axis=1)).ravel() >= min_user
        i_ok = np.asarray(sub.sum(axis=0)).ravel() >= min_item
        if u_ok.all() and i_ok.all():
            break
        users[np.flatnonzero(users)[~u_ok]] = False
        items[np.flatnonzero(items)[~i_ok]] = False
    sub = b[users][:, items]
    users[np.flatnonzero(users)[np.diff(sub.indptr) == 0]] = False
    return users, items


def build_interactions(
    frame: EventFrame,
    config: MatrixConfig | None = None,
    *,
    catalog: Catalog | None = None,
    reference_time: float | datetime | None = None,
    keep_events: bool = True,
) -> Interactions:
    """Weigh, decay and sum the events into a users × items CSR matrix.

    ``reference_time`` (default: the latest event) is "now" for the decay. With a
    ``catalog``, its items that have no interactions are added as empty columns (cold items
    for content and new-arrival models) and item features are attached.
    """
    config = config or MatrixConfig()
    if isinstance(reference_time, datetime):
        reference_time = reference_time.astimezone(UTC).timestamp()
    if len(frame) == 0:
        raise TrainingDataError(
            "no events to train on (after dropping duplicates and users without consent); "
            "check the data sources in the training config"
        )
    ref = float(frame.ts.max()) if reference_time is None else float(reference_time)
    w = event_weights(frame, config)
    w *= decay_factors(frame.ts, ref, config.half_life_days)
    use = (w > 0) & (frame.item >= 0)
    n_u, n_i = len(frame.user_ids), len(frame.item_ids)
    m = sp.csr_matrix(
        (w[use], (frame.user[use], frame.item[use])), shape=(n_u, n_i), dtype=np.float32
    )
    m.sum_duplicates()
    if config.transform == "log1p":
        m.data = np.log1p(m.data)
    elif config.transform == "binary":
        m.data = np.ones_like(m.data)
    m.eliminate_zeros()
    u_keep, i_keep = _filter_counts(m, config.min_user_items, config.min_item_users)
    if not u_keep.any():
        raise TrainingDataError(
            "no user has enough interactions: lower min_user_items / min_item_users or "
            "check the event weights"
        )
    user_codes = np.flatnonzero(u_keep)
    item_codes = np.flatnonzero(i_keep)
    item_vocab_ids = frame.item_ids[item_codes]
    if catalog is not None:
        have = set(item_vocab_ids.tolist())
        extra = [i for i in catalog.item_ids if i not in have]
        if extra:
            item_vocab_ids = np.concatenate([item_vocab_ids, np.asarray(extra, dtype=object)])
    users = Vocabulary(frame.user_ids[user_codes])
    items = Vocabulary(item_vocab_ids)
    matrix = m[user_codes][:, item_codes]
    if len(items) > matrix.shape[1]:
        matrix = sp.hstack(
            [matrix, sp.csr_matrix((matrix.shape[0], len(items) - matrix.shape[1]),
                                   dtype=np.float32)], format="csr")
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    matrix.sort_indices()

    events = None
    if keep_events:
        umap = np.full(n_u, -1, np.int32)
        umap[user_codes] = np.arange(len(user_codes), dtype=np.int32)
        imap = np.full(n_i + 1, -1, np.int32)  # last slot maps item -1
        imap[item_codes] = np.arange(len(item_codes), dtype=np.int32)
        ev_u = umap[frame.user]
        ev_i = imap[frame.item]
        base_w = config.weight_vector()[frame.type]
        sel = (ev_u >= 0) & (ev_i >= 0) & (base_w > 0)
        events = TrainEvents(
            user=ev_u[sel], item=ev_i[sel], type=frame.type[sel],
            weight=event_weights(frame, config)[sel], ts=frame.ts[sel], basket=frame.basket[sel],
        )
    log.info("interaction matrix: %d users × %d items, %d non-zeros from %d events",
             matrix.shape[0], matrix.shape[1], matrix.nnz, len(frame))
    return Interactions(
        matrix=matrix,
        users=users,
        items=items,
        reference_time=ref,
        window=frame.window,
        config=config,
        events=events,
        catalog=None if catalog is None else catalog.aligned(items),
        n_events=len(frame),
    )


def relevance_matrix(
    test: EventFrame,
    train: Interactions,
    *,
    types: Iterable[str] | None = None,
    exclude_train_items: bool = True,
) -> sp.csr_matrix:
    """Binary users × items matrix (train's index space) of what each user did in ``test``.

    ``types``: which event types count as relevant (default: every type with a positive
    weight in ``train.config``). Users and items unknown to ``train`` are dropped; with
    ``exclude_train_items`` items already in the user's training row are dropped too (the
    models filter them out, so they cannot be hits).
    """
    if types is None:
        wv = train.config.weight_vector()
        type_ok = wv > 0
    else:
        type_ok = np.zeros(len(EVENT_TYPES), dtype=bool)
        for t in types:
            type_ok[TYPE_CODE[t]] = True
    sel = type_ok[test.type] & (test.item >= 0)
    umap = train.users.indices(test.user_ids.tolist()) if len(test.user_ids) else np.zeros(0)
    imap = train.items.indices(test.item_ids.tolist()) if len(test.item_ids) else np.zeros(0)
    u = umap[test.user[sel]] if sel.any() else np.zeros(0, np.int64)
    i = imap[test.item[sel]] if sel.any() else np.zeros(0, np.int64)
    ok = (u >= 0) & (i >= 0)
    rel = sp.csr_matrix(
        (np.ones(int(ok.sum()), np.float32), (u[ok], i[ok])), shape=train.shape
    )
    rel.sum_duplicates()
    rel.data[:] = 1.0
    if exclude_train_items:
        seen = train.matrix.copy()
        seen.data = np.ones_like(seen.data)
        rel = rel - rel.multiply(seen)
        rel = sp.csr_matrix(rel)
        rel.eliminate_zeros()
    rel.sort_indices()
    return rel


def read_events(
    sources: Iterable[pa.Table],
) -> pa.Table:
    """Concatenate event tables from several sources (files, event log) into one."""
    tables = [t for t in sources if t.num_rows]
    if not tables:
        raise TrainingDataError("the data sources hold no events")
    return pa.concat_tables(tables, promote_options="permissive")
