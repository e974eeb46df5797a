"""The synthetic shop's shoppers and their events, one chunk of users at a time.

:func:`simulate_chunk` draws a chunk's shoppers (hidden tastes, ``users.jsonl`` records, truth
rows), their sessions (day, hour, intent leaf, search or home feed, channel, device) and the
events of each session: searches, impressions, position-biased clicks, views, the cart and
purchase funnel of :mod:`data.behaviour`, planted bundle purchases, ratings and refunds. The
chunk's draws come from the streams ``[seed, 2, chunk]`` and ``[seed, 7, chunk]`` (behaviour
tastes and clicks) in a fixed order, so the same spec gives the same events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from data.behaviour import NEW_DAYS, Match, Tastes, buy_prob, cart_prob, click_prob
from data.synthetic.catalog import Catalog
from data.synthetic.events import EventColumns, Sessions, event_table
from data.synthetic.spec import ShopSpec
from data.synthetic.taxonomy import BRAND_NAMES, LEAF_PATHS, LEAVES, MAX_VARIANTS, TOPS

REGIONS = ("台北市", "新北市", "桃園市", "台中市", "台南市", "高雄市", "新竹市", "基隆市")
REGION_P = (0.24, 0.2, 0.1, 0.14, 0.08, 0.14, 0.06, 0.04)
TIERS = ("bronze", "silver", "gold", "vip")
TIER_P = (0.55, 0.27, 0.14, 0.04)

# Local (UTC+8) hour-of-day shape of traffic: quiet nights, evening peak.
# fmt: off
_HOURS_LOCAL = np.array(
    [0.35, 0.2, 0.12, 0.08, 0.08, 0.12, 0.3, 0.6, 0.85, 1.0, 1.0, 1.1,
     1.3, 1.2, 1.0, 1.0, 1.0, 1.1, 1.3, 1.6, 1.9, 2.1, 1.8, 0.9]
)
# fmt: on
_SALE_DAYS = {(6, 18), (11, 11), (12, 12)}

BEHAVIOUR_TASTES: tuple[str, ...] = ("brand_loyalty", "new_taste", "rating_taste", "position_decay")
"""Hidden tastes of ``data.behaviour.Tastes`` recorded in the truth besides price sensitivity."""

EVENTS_PER_SESSION = 7.0
"""Measured mean events per session of the simulator; sizes the number of sessions."""


def day_weights(spec: ShopSpec) -> np.ndarray:
    """Each simulated day's share of sessions: weekends, sale days and slow growth."""
    w = np.empty(spec.days)
    for d in range(spec.days):
        day = spec.start + timedelta(days=d)
        w[d] = (1.35 if day.weekday() >= 4 else 1.0) * (1 + 0.3 * d / spec.days)
        if (day.month, day.day) in _SALE_DAYS:
            w[d] *= 2.5
    return w / w.sum()


def hour_weights() -> np.ndarray:
    """Each UTC hour's share of sessions (the local UTC+8 shape shifted)."""
    hour_p = np.roll(_HOURS_LOCAL, -8)
    return hour_p / hour_p.sum()


@dataclass
class ChunkOut:
    users: list[dict[str, Any]]
    truth: dict[str, list[Any]]
    events: pa.Table
    n_sessions: int
    bundle_copurchases: int


@dataclass(frozen=True)
class _Shoppers:
    """A chunk's shoppers: hidden tastes (arrays by local user number) and their records."""

    top3: np.ndarray
    """Favourite leaves, best first (the first ``n_pref`` count)."""
    n_pref: np.ndarray
    mix: np.ndarray
    """Share of sessions spent on each favourite leaf."""
    pb1: np.ndarray
    pb2: np.ndarray
    """Favourite brands (global brand numbers)."""
    tastes: Tastes
    activity: np.ndarray
    users: list[dict[str, Any]]
    truth: dict[str, list[Any]]


def _in_prefs(top3: np.ndarray, n_pref: np.ndarray, u: np.ndarray, lf: np.ndarray) -> np.ndarray:
    t = top3[u]
    k = n_pref[u]
    return (t[:, 0] == lf) | ((k > 1) & (t[:, 1] == lf)) | ((k > 2) & (t[:, 2] == lf))


def _match(cat: Catalog, sh: _Shoppers, u: np.ndarray, item: np.ndarray, t: np.ndarray) -> Match:
    """What :mod:`data.behaviour` needs about shoppers ``u`` seeing ``item`` at time ``t``."""
    return Match(
        in_leaf=_in_prefs(sh.top3, sh.n_pref, u, cat.leaf[item]),
        brand=(cat.brand[item] == sh.pb1[u]) | (cat.brand[item] == sh.pb2[u]),
        relprice=cat.relprice[item],
        is_new=(t - cat.created[item]) < NEW_DAYS * 86400,
        rating=cat.rating[item],
    )


def _pick(cat: Catalog, ses: Sessions, sess: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Items a shopper looks at in these sessions: the (searched) intent leaf."""
    out = np.empty(len(sess), dtype=np.int64)
    seg = ses.use_seg[sess] & ses.is_search[sess]
    if seg.any():
        out[seg] = cat.by_leaf_variant.sample(ses.seg_key[sess[seg]], rng)
    if (~seg).any():
        out[~seg] = cat.by_leaf.sample(ses.leaf[sess[~seg]], rng)
    return out


def _draw_shoppers(
    rng: np.random.Generator, brng: np.random.Generator, cat: Catalog, u0: int, n: int
) -> _Shoppers:
    """Hidden tastes, ``users.jsonl`` records and truth rows of users ``u0 … u0 + n - 1``."""
    n_leaves = len(LEAVES)
    nb = len(TOPS[0].brands)
    keys = np.log(cat.leaf_user_p)[None, :] + rng.gumbel(size=(n, n_leaves))
    top3 = np.argsort(-keys, axis=1, kind="stable")[:, :3]
    n_pref = rng.choice(np.array([1, 2, 3]), size=n, p=[0.35, 0.4, 0.25])
    mix = np.array([[1.0, 0, 0], [0.65, 0.35, 0], [0.5, 0.3, 0.2]])[n_pref - 1]
    pb1 = cat.leaf_top[top3[:, 0]] * nb + rng.integers(0, nb, n)
    second = top3[np.arange(n), (rng.random(n) * n_pref).astype(np.int64)]
    pb2 = cat.leaf_top[second] * nb + rng.integers(0, nb, n)
    sens = rng.beta(2, 2, n)
    # the other behaviour tastes come from a stream of their own, so the draws of leaves,
    # brands and sessions do not depend on them
    tastes = Tastes.draw(sens, brng)
    consent = rng.random(n) < 0.95
    activity = rng.lognormal(0, 1.0, n)
    region = rng.choice(len(REGIONS), n, p=REGION_P)
    tier = rng.choice(len(TIERS), n, p=TIER_P)
    seg_score = sens + rng.normal(0, 0.12, n)
    segment = np.where(
        seg_score > 0.65, "price_sensitive", np.where(seg_score < 0.35, "premium", "mainstream")
    )

    users = [
        {
            "user_id": f"u{u0 + i}",
            "attributes": {"region": REGIONS[r], "tier": TIERS[t], "segment": g},
            "consent": c,
        }
        for i, (r, t, g, c) in enumerate(
            zip(region.tolist(), tier.tolist(), segment.tolist(), consent.tolist(), strict=True)
        )
    ]
    truth = {
        "user_id": [f"u{u0 + i}" for i in range(n)],
        "leaves": [[LEAF_PATHS[x] for x in top3[i, : n_pref[i]]] for i in range(n)],
        "brands": [
            sorted({BRAND_NAMES[a], BRAND_NAMES[b]})
            for a, b in zip(pb1.tolist(), pb2.tolist(), strict=True)
        ],
        "price_sensitivity": np.round(sens, 4).tolist(),
        "activity": np.round(activity, 4).tolist(),
        **{k: np.round(getattr(tastes, k), 4).tolist() for k in BEHAVIOUR_TASTES},
    }
    return _Shoppers(top3, n_pref, mix, pb1, pb2, tastes, activity, users, truth)


def _draw_sessions(
    rng: np.random.Generator,
    spec: ShopSpec,
    cat: Catalog,
    sh: _Shoppers,
    day_p: np.ndarray,
    hour_p: np.ndarray,
) -> Sessions:
    """Sessions per shopper (by activity), each with a time, an intent leaf and a query."""
    n, n_leaves = len(sh.activity), len(LEAVES)
    m = spec.n_events / (spec.n_users * EVENTS_PER_SESSION)
    w = sh.activity / np.exp(0.5)
    ns = 1 + rng.poisson((m - 1) * w) if m >= 1.5 else rng.poisson(m * w)
    S = int(ns.sum())
    s_user = np.repeat(np.arange(n), ns)
    s_day = rng.choice(spec.days, S, p=day_p)
    s_t0 = s_day * 86400 + rng.choice(24, S, p=hour_p) * 3600 + rng.integers(0, 3600, S)
    explore = rng.random(S) < 0.15
    cum = np.cumsum(sh.mix, axis=1)[s_user]
    slot = (rng.random(S)[:, None] > cum[:, :2]).sum(axis=1)
    s_leaf = sh.top3[s_user, slot]
    s_leaf = np.where(explore, rng.choice(n_leaves, S, p=cat.leaf_user_p), s_leaf)
    is_search = rng.random(S) < 0.3
    lang_zh = rng.random(S) < 0.6
    nvar = cat.leaf_nvar[s_leaf]
    qv = np.where(rng.random(S) < 0.4, (rng.random(S) * nvar).astype(np.int64), -1)
    seg_key = s_leaf * MAX_VARIANTS + np.maximum(qv, 0)
    use_seg = (qv >= 0) & (cat.by_leaf_variant.count[seg_key] > 0)
    qidx = (s_leaf * (MAX_VARIANTS + 1) + (qv + 1)) * 2 + lang_zh
    s_channel = (rng.random(S) < 0.4).astype(np.int64)  # 0 app, 1 web
    s_device = np.where(
        s_channel == 0,
        (rng.random(S) < 0.55).astype(np.int64),
        2 + (rng.random(S) < 0.5).astype(np.int64),
    )
    return Sessions(S, s_user, s_t0, s_leaf, is_search, seg_key, use_seg, qidx, s_channel, s_device)


def _browse(
    rng: np.random.Generator,
    brng: np.random.Generator,
    cat: Catalog,
    sh: _Shoppers,
    ses: Sessions,
    ev: EventColumns,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Searches, impressions (search results or the home feed) and the clicks on them.

    Returns the clicks' sessions, items and times."""
    S, is_search, s_t0 = ses.count, ses.is_search, ses.t0
    ss = np.flatnonzero(is_search)
    ev.emit(s_t0[ss], ss, -1, "search", q=True)

    has_imp = is_search | (rng.random(S) < 0.45)
    n_imp = np.where(has_imp, rng.integers(4, 9, S), 0)
    imp_sess = np.repeat(np.arange(S), n_imp)
    starts = np.repeat(np.cumsum(n_imp) - n_imp, n_imp)
    imp_pos = np.arange(len(imp_sess)) - starts
    from_leaf = is_search[imp_sess] | (rng.random(len(imp_sess)) < 0.55)
    imp_item = np.empty(len(imp_sess), dtype=np.int64)
    imp_item[from_leaf] = _pick(cat, ses, imp_sess[from_leaf], rng)
    k = int((~from_leaf).sum())
    imp_item[~from_leaf] = np.minimum(
        np.searchsorted(cat.global_cdf, rng.random(k)), len(cat.pop) - 1
    )
    imp_t = s_t0[imp_sess] + 3
    ok = cat.created[imp_item] <= imp_t
    imp_sess, imp_pos, imp_item, imp_t = imp_sess[ok], imp_pos[ok], imp_item[ok], imp_t[ok]
    ev.emit(imp_t, imp_sess, imp_item, "impression", pos=imp_pos, req=True, q=is_search[imp_sess])

    # clicks on impressions (position bias × appeal, data.behaviour), each followed by a view
    iu = ses.user[imp_sess]
    p_click = click_prob(
        sh.tastes.take(iu),
        _match(cat, sh, iu, imp_item, imp_t),
        imp_pos,
        boost=0.4 * is_search[imp_sess],
    )
    clicked = brng.random(len(imp_sess)) < p_click
    c_sess, c_item, c_pos = imp_sess[clicked], imp_item[clicked], imp_pos[clicked]
    c_t = imp_t[clicked] + 5 + rng.integers(0, 120, len(c_sess))
    ev.emit(c_t, c_sess, c_item, "click", pos=c_pos, req=True, q=is_search[c_sess])
    return c_sess, c_item, c_t


def _views(
    rng: np.random.Generator,
    spec: ShopSpec,
    cat: Catalog,
    ses: Sessions,
    ev: EventColumns,
    clicks: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A view after each click, direct product views in the intent leaf, and views of the
    trending items in the last ``trend_days``. Returns the views' sessions, items and times."""
    c_sess, c_item, c_t = clicks
    S, s_t0 = ses.count, ses.t0
    horizon = spec.days * 86400
    n_dv = rng.geometric(0.4, S)
    dv_sess = np.repeat(np.arange(S), n_dv)
    dv_item = _pick(cat, ses, dv_sess, rng)
    dv_t = s_t0[dv_sess] + 20 + rng.integers(0, 1200, len(dv_sess))
    trend_window = s_t0 >= horizon - spec.trend_days * 86400
    tr_sess = (
        np.flatnonzero(trend_window & (rng.random(S) < 0.3))
        if len(cat.trending)
        else np.array([], int)
    )
    tr_item = (
        cat.trending[rng.integers(0, max(1, len(cat.trending)), len(tr_sess))]
        if len(tr_sess)
        else tr_sess
    )
    tr_t = s_t0[tr_sess] + 15 + rng.integers(0, 600, len(tr_sess))
    v_sess = np.concatenate([c_sess, dv_sess, tr_sess])
    v_item = np.concatenate([c_item, dv_item, tr_item])
    v_t = np.concatenate([c_t + 2, dv_t, tr_t])
    ok = cat.created[v_item] <= v_t
    v_sess, v_item, v_t = v_sess[ok], v_item[ok], v_t[ok]
    ev.emit(v_t, v_sess, v_item, "view")
    return v_sess, v_item, v_t


def _funnel(
    rng: np.random.Generator,
    cat: Catalog,
    sh: _Shoppers,
    ses: Sessions,
    ev: EventColumns,
    views: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Favourites, shares, carts and removals after views, driven by the hidden tastes.

    Returns the purchases' sessions, items and times (not emitted yet: bundles join them)."""
    v_sess, v_item, v_t = views
    u = ses.user[v_sess]
    V = len(v_sess)
    vm = _match(cat, sh, u, v_item, v_t)
    in_pref, brand_pref = vm.in_leaf, vm.brand
    vt = sh.tastes.take(u)
    cart = rng.random(V) < cart_prob(vt, vm)
    buy = cart & (rng.random(V) < buy_prob(vt, vm))
    remove = cart & ~buy & (rng.random(V) < 0.25)
    fav = rng.random(V) < 0.012 * (1 + in_pref + brand_pref)
    share = rng.random(V) < 0.004
    ev.emit(v_t[fav] + rng.integers(3, 60, int(fav.sum())), v_sess[fav], v_item[fav], "favorite")
    ev.emit(
        v_t[share] + rng.integers(3, 90, int(share.sum())), v_sess[share], v_item[share], "share"
    )
    cart_t = v_t + rng.integers(20, 300, V)
    ev.emit(cart_t[cart], v_sess[cart], v_item[cart], "add_to_cart", value=np.ones(int(cart.sum())))
    ev.emit(
        cart_t[remove] + rng.integers(30, 600, int(remove.sum())),
        v_sess[remove],
        v_item[remove],
        "remove_from_cart",
    )
    p_sess, p_item = v_sess[buy], v_item[buy]
    p_t = cart_t[buy] + rng.integers(60, 900, len(p_sess))
    return p_sess, p_item, p_t


def _purchases(
    rng: np.random.Generator,
    cat: Catalog,
    sh: _Shoppers,
    ses: Sessions,
    ev: EventColumns,
    bought: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """The purchases, their planted bundle partners (bought in the same session), then some
    ratings and a few refunds. Returns the bundle partners' purchase times."""
    p_sess, p_item, p_t = bought
    part = cat.partner[p_item]
    bmask = (part >= 0) & (rng.random(len(p_item)) < 0.75)
    b_sess, b_item, b_t = p_sess[bmask], part[bmask], p_t[bmask]
    ev.emit(b_t + 20, b_sess, b_item, "view")
    ev.emit(b_t + 40, b_sess, b_item, "add_to_cart", value=np.ones(len(b_sess)))
    p_sess = np.concatenate([p_sess, b_sess])
    p_item = np.concatenate([p_item, b_item])
    p_t = np.concatenate([p_t, b_t + 60])
    ev.emit(p_t, p_sess, p_item, "purchase", value=cat.price[p_item])

    P = len(p_sess)
    rated = rng.random(P) < 0.2
    pu = ses.user[p_sess]
    bp = (cat.brand[p_item] == sh.pb1[pu]) | (cat.brand[p_item] == sh.pb2[pu])
    stars = np.clip(np.round(3.4 + 1.0 * bp + rng.normal(0, 0.9, P)), 1, 5)
    ev.emit(
        p_t[rated] + rng.integers(86400, 10 * 86400, int(rated.sum())),
        p_sess[rated],
        p_item[rated],
        "rate",
        value=stars[rated],
    )
    refunded = rng.random(P) < 0.03
    ev.emit(
        p_t[refunded] + rng.integers(2 * 86400, 14 * 86400, int(refunded.sum())),
        p_sess[refunded],
        p_item[refunded],
        "refund",
        value=cat.price[p_item[refunded]],
    )
    return b_t + 60


def simulate_chunk(
    cat: Catalog,
    spec: ShopSpec,
    chunk: int,
    users: tuple[int, int],
    ids_from: tuple[int, int],
    day_p: np.ndarray,
    hour_p: np.ndarray,
) -> ChunkOut:
    """The shoppers ``users`` = (first, end) of chunk number ``chunk`` and their events;
    ``ids_from`` = (first session, first event) number, so ids continue across chunks."""
    u0, u1 = users
    rng = np.random.default_rng([spec.seed, 2, chunk])
    brng = np.random.default_rng([spec.seed, 7, chunk])
    sh = _draw_shoppers(rng, brng, cat, u0, u1 - u0)
    ses = _draw_sessions(rng, spec, cat, sh, day_p, hour_p)
    ev = EventColumns()
    clicks = _browse(rng, brng, cat, sh, ses, ev)
    views = _views(rng, spec, cat, ses, ev, clicks)
    bought = _funnel(rng, cat, sh, ses, ev, views)
    bundle_t = _purchases(rng, cat, sh, ses, ev, bought)
    table = event_table(spec, cat, ses, ev, sh.truth["user_id"], (u0, *ids_from))
    copurchases = int((bundle_t < spec.days * 86400).sum())
    return ChunkOut(sh.users, sh.truth, table, ses.count, copurchases)
