"""Attribution: which served request, surface and experiment variant each event belongs to.

An event's surface is its own ``context.surface``, else the surface its ``request_id`` was
served on (the request log). An event belongs to an experiment variant by its own
``context.experiment/variant``, else by its ``request_id`` in the request log, else — for users
already exposed to the experiment — by the user's deterministic assignment (purchases often
happen away from a list). :func:`attribute_variants` counts how many events each path found.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from analytics.groupby import filled, sorted_unique, string_codes
from merch.experiments import Experiment, assign_variant
from merch.request_log import SERVED_COLUMNS, RequestLog


def lookup_served(
    requests: RequestLog,
    ids: Sequence[str],
    *,
    experiment: str | None = None,
    columns: Sequence[str] = SERVED_COLUMNS,
) -> dict[str, list[str | None]]:
    """Logged rows of ``ids`` column-wise (any ``RequestLog``; column-wise when it can)."""
    lookup_columns = getattr(requests, "lookup_columns", None)
    if callable(lookup_columns):
        return lookup_columns(ids, experiment=experiment, columns=columns)
    rows = [
        r for r in requests.lookup(ids).values() if experiment is None or r.experiment == experiment
    ]
    return {f: [getattr(r, f) for r in rows] for f in columns}


def served_rows(
    requests: RequestLog, t: pa.Table, need: np.ndarray, experiment: str | None
) -> tuple[pa.Table, np.ndarray, list[str]]:
    """What the request log says about the window's events.

    Returns the logged rows of the request ids of the events in ``need`` (those whose
    surface or variant may come from the log), each event's row in them (-1 = none or not
    needed), and — with an experiment — the users of every logged request of the window
    that served that experiment (users exposed to it). Asking only for what is needed keeps
    the look-up small when the storefront echoes surface and variant itself."""
    codes, ids = string_codes(t.column("request_id"))  # one hash pass over the events
    id_list = ids.to_pylist()
    needed = sorted_unique(codes[need & (codes >= 0)])
    # when most requests are needed anyway, one read of them all (exposure from the same rows)
    # is cheaper than two
    read_all = experiment is not None and len(needed) * 2 >= len(id_list)
    if read_all:
        needed = np.arange(len(id_list), dtype=np.int64)
    served = pa.table(
        {
            f: pa.array(v, pa.string())
            for f, v in lookup_served(requests, [id_list[j] for j in needed if id_list[j]]).items()
        }
    )
    row_of_id = np.full(len(id_list) + 1, -1, np.int64)  # the last entry: no request id
    at = pc.index_in(ids.take(pa.array(needed, pa.int64())), value_set=served["request_id"])
    row_of_id[needed] = filled(at, -1).astype(np.int64)
    served_at = np.where(need, row_of_id[codes], -1)
    exposed: list[str] = []
    if experiment is not None:
        if read_all:
            mine = pc.fill_null(pc.equal(served["experiment"], experiment), False)
            users = served["user_id"].filter(mine).to_pylist()
        else:
            users = lookup_served(
                requests,
                [i for i in id_list if i],
                experiment=experiment,
                columns=("user_id",),
            )["user_id"]
        exposed = [u for u in set(users) if u]
    return served, served_at, exposed


def context_variants(t: pa.Table, experiment: Experiment) -> np.ndarray:
    """Each event's variant as its own context names it (-1 when not this experiment's)."""
    names = [v.name for v in experiment.variants]
    # as dictionary codes: a few distinct strings, so the comparisons run on small
    # dictionaries and numpy look-ups, not on every event's string
    exp_codes, exp_ids = string_codes(t.column("experiment"))
    ours = [x == experiment.experiment_id for x in exp_ids.to_pylist()]
    is_ours = np.array([*ours, False], bool)
    var_codes, var_ids = string_codes(t.column("variant"))
    name_of = np.array([names.index(x) if x in names else -1 for x in var_ids.to_pylist()] + [-1])
    ctx_variant = name_of.astype(np.int64)[var_codes]
    return np.where(is_ours[exp_codes], ctx_variant, -1)


def attribute_variants(
    user: np.ndarray,
    user_ids: pa.Array,
    experiment: Experiment,
    ctx_variant: np.ndarray,
    served: pa.Table | None,
    served_at: np.ndarray,
    exposed_users: list[str],
) -> tuple[np.ndarray, dict[str, int]]:
    """Each event's variant (index into the experiment's variants, -1 = not attributed) and
    how many events each attribution path found (see the module doc). ``user`` holds each
    event's code into ``user_ids``."""
    eid = experiment.experiment_id
    names = [v.name for v in experiment.variants]
    in_ctx = ctx_variant >= 0
    variant = ctx_variant.copy()

    by_request = np.zeros(len(variant), bool)
    if served is not None and served.num_rows:
        in_exp = filled(pc.equal(served.column("experiment"), eid), False).astype(bool)
        name_set = pa.array(names, pa.string())
        codes = filled(pc.index_in(served.column("variant"), value_set=name_set), -1)
        codes = np.where(in_exp, codes.astype(np.int64), -1)
        logged = np.where(served_at >= 0, codes[np.maximum(served_at, 0)], -1)
        by_request = (~in_ctx) & (logged >= 0)
        variant[by_request] = logged[by_request]
    exposed = np.zeros(len(user_ids), bool)
    exposed[user[in_ctx]] = True
    if exposed_users:
        seen = pc.index_in(pa.array(exposed_users, pa.string()), value_set=user_ids)
        exposed[pc.drop_null(seen).to_numpy(zero_copy_only=False).astype(np.int64)] = True
    by_user = (variant < 0) & exposed[user]
    if by_user.any():
        codes_u = sorted_unique(user[by_user])
        ids_u = user_ids.take(pa.array(codes_u)).to_pylist()
        per_user = np.full(len(user_ids), -1, np.int64)
        per_user[codes_u] = [names.index(assign_variant(experiment, u).name) for u in ids_u]
        variant[by_user] = per_user[user[by_user]]
    how = {
        "context": int(in_ctx.sum()),
        "request_id": int(by_request.sum()),
        "user": int(by_user.sum()),
    }
    return variant, how
