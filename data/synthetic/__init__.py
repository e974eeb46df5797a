"""A believable synthetic shop, seeded and streamed, with its hidden truth saved for checking.

Output (``generate(spec, out_dir)`` writes these files into ``out_dir``):

``items.jsonl``
    One :class:`data.models.Item` per line. ``item_id`` is ``i<n>``; ``category`` is a
    3-level list such as ``["服裝", "女裝", "連衣裙"]``; titles are bilingual and hold the
    words shoppers search, e.g. ``"紅色碎花連衣裙 Red Floral Dress - Lumière L-204"``;
    ``attributes`` has ``category_en`` (``"Clothing > Women > Dresses"``) and one of
    ``colour``/``flavour``/``scent``; prices in TWD; some items have ``stock == 0`` and some
    ``is_active == false``; ``created_at`` up to a year before ``spec.start`` (about 8% are
    new arrivals created during the simulated period).
``users.jsonl``
    One :class:`data.models.User` per line (``u<n>``), ``attributes`` = region, tier, segment;
    ``consent`` true for about 95%.
``events.parquet``
    All events in :data:`data.event_table.EVENT_SCHEMA` (flat columns: event_id, user_id,
    item_id, type, timestamp[us, UTC], value, session_id, query, position, request_id,
    experiment, variant, channel, device, surface). One row group per chunk of users; rows
    are sorted by time *within* a row group only (small shops are one chunk, so globally
    sorted). ``value`` = price for purchase/refund, rating 1–5 for rate, else null.
``events.jsonl``
    The same events as :class:`data.models.Event` JSON lines (nested ``context``), written
    when ``events_format`` is ``"jsonl"``/``"both"``, or ``"auto"`` and
    ``n_events <= 200_000``.
``truth.json``
    ``spec``, ``categories`` (leaf paths), ``bundles`` (``[[item_a, item_b], …]``, planted
    pairs bought together in one session), ``trending`` (item ids that spike in the last
    ``trend_days``), ``trend_days``, ``counts``; and ``users`` (per-user tastes) when
    ``n_users <= 50_000``.
``truth_users.parquet``
    Per-user hidden tastes for every size: user_id, leaves (category paths joined by
    " > "), brands, price_sensitivity (0–1), activity, and the behaviour tastes of
    :mod:`data.behaviour` (brand_loyalty, new_taste, rating_taste, position_decay): clicks on
    impressions are position-biased (examined with probability position_decay ** position)
    and, like carts and purchases, drawn from those tastes.

Everything is a pure function of the :class:`ShopSpec`: same spec → same bytes. The number
of events is approximate (within a few percent of ``n_events``); the summary has the count.

The package, bottom to top: :mod:`~data.synthetic.taxonomy` (categories, brands, variants:
plain data), :mod:`~data.synthetic.spec` (what to generate), :mod:`~data.synthetic.catalog`
(the items, bundles and trending items), :mod:`~data.synthetic.simulator` (shoppers, sessions
and their events, one chunk of users at a time) and :mod:`~data.synthetic.writer` (the files).
"""

from __future__ import annotations

from data.synthetic.simulator import BEHAVIOUR_TASTES
from data.synthetic.spec import ShopSpec
from data.synthetic.taxonomy import COLOURS, FLAVOURS, LEAVES, SCENTS
from data.synthetic.writer import EventsFormat, GenerateSummary, Truth, generate, load_truth

__all__ = [
    "BEHAVIOUR_TASTES",
    "COLOURS",
    "FLAVOURS",
    "LEAVES",
    "SCENTS",
    "EventsFormat",
    "GenerateSummary",
    "ShopSpec",
    "Truth",
    "generate",
    "load_truth",
]
