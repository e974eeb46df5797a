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
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data.behaviour import NEW_DAYS, Match, Tastes, buy_prob, cart_prob, click_prob
from data.event_table import EVENT_SCHEMA, dumps, table_to_dicts

log = logging.getLogger(__name__)

EventsFormat = Literal["auto", "parquet", "jsonl", "both"]
JSONL_AUTO_LIMIT = 200_000
TRUTH_USERS_IN_JSON_LIMIT = 50_000

# --------------------------------------------------------------------------------------
# The catalogue's vocabulary: 8 top categories, 42 leaves, brands, variants, styles.

COLOURS = (
    ("紅色", "Red"),
    ("黑色", "Black"),
    ("白色", "White"),
    ("藍色", "Blue"),
    ("粉色", "Pink"),
    ("綠色", "Green"),
    ("灰色", "Gray"),
    ("米色", "Beige"),
    ("紫色", "Purple"),
    ("黃色", "Yellow"),
)
FLAVOURS = (
    ("原味", "Original"),
    ("辣味", "Spicy"),
    ("蜂蜜", "Honey"),
    ("抹茶", "Matcha"),
    ("黑糖", "Brown Sugar"),
    ("海鹽", "Sea Salt"),
)
SCENTS = (
    ("玫瑰", "Rose"),
    ("薰衣草", "Lavender"),
    ("柑橘", "Citrus"),
    ("綠茶", "Green Tea"),
    ("無香", "Unscented"),
)
_VARIANTS = {"colour": COLOURS, "flavour": FLAVOURS, "scent": SCENTS}
MAX_VARIANTS = max(len(v) for v in _VARIANTS.values())


@dataclass(frozen=True)
class TopCategory:
    zh: str
    en: str
    variant: Literal["colour", "flavour", "scent"]
    styles: tuple[tuple[str, str], ...]
    brands: tuple[str, ...]
    feature: tuple[str, str]


@dataclass(frozen=True)
class Leaf:
    top: int
    zh: tuple[str, str, str]
    en: tuple[str, str, str]
    noun: str
    """English noun used in titles and queries ("Dress", "Phone")."""
    price: float
    """Median price in TWD."""

    @property
    def path(self) -> str:
        return " > ".join(self.zh)


TOPS: tuple[TopCategory, ...] = (
    TopCategory(
        "服裝",
        "Clothing",
        "colour",
        (
            ("修身", "Slim"),
            ("寬鬆", "Loose"),
            ("復古", "Vintage"),
            ("碎花", "Floral"),
            ("簡約", "Classic"),
            ("純棉", "Cotton"),
        ),
        ("Lumière", "UrbanThread", "MiMi", "北境 Northland", "Cotton&Co", "Sora"),
        ("舒適透氣，四季皆宜", "comfortable and breathable in every season"),
    ),
    TopCategory(
        "鞋靴",
        "Shoes",
        "colour",
        (
            ("輕量", "Lightweight"),
            ("透氣", "Breathable"),
            ("防滑", "Non-slip"),
            ("經典", "Classic"),
            ("減震", "Cushioned"),
        ),
        ("StrideOn", "Pace", "步履 Bulu", "Heelia", "TrailFox", "Kiddo"),
        ("貼合腳型，久走不累", "fits the foot and stays comfortable all day"),
    ),
    TopCategory(
        "數碼",
        "Electronics",
        "colour",
        (("旗艦", "Pro"), ("輕薄", "Air"), ("入門", "Lite"), ("高階", "Max"), ("迷你", "Mini")),
        ("Nova", "Zenix", "光速 Lightspeed", "Orbit", "Kestrel", "Pixelo"),
        ("效能強勁，續航持久", "fast, with a long battery life"),
    ),
    TopCategory(
        "美妝",
        "Beauty",
        "scent",
        (
            ("保濕", "Hydrating"),
            ("亮白", "Brightening"),
            ("抗老", "Anti-aging"),
            ("溫和", "Gentle"),
            ("清爽", "Fresh"),
        ),
        ("Bloom", "雪肌 Snowskin", "Aurelle", "PureLab", "Maison Rose", "Herbé"),
        ("溫和不刺激，敏感肌適用", "gentle, suitable for sensitive skin"),
    ),
    TopCategory(
        "家居",
        "Home",
        "colour",
        (
            ("不鏽鋼", "Stainless"),
            ("北歐", "Nordic"),
            ("日式", "Japanese"),
            ("極簡", "Minimal"),
            ("人體工學", "Ergonomic"),
        ),
        ("Hearth", "木匠 Mujiang", "Nido", "Casa Luz", "Kettlewell", "Restwell"),
        ("耐用好清潔，居家必備", "durable, easy to clean, a home essential"),
    ),
    TopCategory(
        "食品",
        "Food",
        "flavour",
        (
            ("有機", "Organic"),
            ("特級", "Premium"),
            ("台灣", "Taiwanese"),
            ("手工", "Handmade"),
            ("經典", "Classic"),
        ),
        ("山嵐 Shanlan", "BeanCraft", "老街 Old Street", "NutriBox", "Farmhouse", "茶語 Chayu"),
        ("嚴選原料，新鮮直送", "carefully sourced and shipped fresh"),
    ),
    TopCategory(
        "運動",
        "Sports",
        "colour",
        (
            ("專業", "Pro"),
            ("輕量", "Lightweight"),
            ("防水", "Waterproof"),
            ("耐磨", "Durable"),
            ("入門", "Starter"),
        ),
        ("Apex", "Summit", "動力 Dongli", "FlexFit", "Ridge", "Courtside"),
        ("專為運動設計，穩定耐用", "built for training, stable and durable"),
    ),
    TopCategory(
        "母嬰",
        "Baby & Kids",
        "colour",
        (
            ("有機棉", "Organic"),
            ("安全", "Safe"),
            ("柔軟", "Soft"),
            ("益智", "Educational"),
            ("輕巧", "Compact"),
        ),
        ("LittleOne", "寶貝 Baobei", "Snuggle", "TinyToes", "Brickly", "Mamacare"),
        ("安全材質，媽媽安心", "made of safe materials parents can trust"),
    ),
)


def _leaf(top: int, mid: tuple[str, str], leaf: tuple[str, str], noun: str, price: float) -> Leaf:
    t = TOPS[top]
    return Leaf(top, (t.zh, mid[0], leaf[0]), (t.en, mid[1], leaf[1]), noun, price)


LEAVES: tuple[Leaf, ...] = (
    _leaf(0, ("女裝", "Women"), ("連衣裙", "Dresses"), "Dress", 1190),
    _leaf(0, ("女裝", "Women"), ("襯衫", "Blouses"), "Blouse", 790),
    _leaf(0, ("女裝", "Women"), ("半身裙", "Skirts"), "Skirt", 690),
    _leaf(0, ("男裝", "Men"), ("T恤", "T-Shirts"), "T-Shirt", 390),
    _leaf(0, ("男裝", "Men"), ("牛仔褲", "Jeans"), "Jeans", 1090),
    _leaf(0, ("男裝", "Men"), ("外套", "Jackets"), "Jacket", 1990),
    _leaf(1, ("女鞋", "Women"), ("高跟鞋", "Heels"), "Heels", 1490),
    _leaf(1, ("運動鞋", "Sneakers"), ("跑步鞋", "Running Shoes"), "Running Shoes", 2490),
    _leaf(1, ("男鞋", "Men"), ("皮鞋", "Leather Shoes"), "Leather Shoes", 1890),
    _leaf(1, ("童鞋", "Kids"), ("涼鞋", "Sandals"), "Sandals", 590),
    _leaf(2, ("手機", "Phones"), ("智慧型手機", "Smartphones"), "Phone", 15900),
    _leaf(2, ("手機配件", "Phone Accessories"), ("手機殼", "Phone Cases"), "Phone Case", 290),
    _leaf(2, ("手機配件", "Phone Accessories"), ("充電器", "Chargers"), "Charger", 490),
    _leaf(2, ("電腦", "Computers"), ("筆記型電腦", "Laptops"), "Laptop", 29900),
    _leaf(2, ("電腦", "Computers"), ("滑鼠", "Mice"), "Mouse", 590),
    _leaf(2, ("音訊", "Audio"), ("藍牙耳機", "Bluetooth Earbuds"), "Bluetooth Earbuds", 1990),
    _leaf(2, ("穿戴裝置", "Wearables"), ("智慧手錶", "Smartwatches"), "Smartwatch", 5490),
    _leaf(3, ("護膚", "Skincare"), ("面霜", "Face Cream"), "Face Cream", 990),
    _leaf(3, ("護膚", "Skincare"), ("精華液", "Serums"), "Serum", 1490),
    _leaf(3, ("彩妝", "Makeup"), ("口紅", "Lipstick"), "Lipstick", 690),
    _leaf(3, ("香水", "Fragrance"), ("女士香水", "Women's Perfume"), "Perfume", 2690),
    _leaf(3, ("個人護理", "Personal Care"), ("洗髮精", "Shampoo"), "Shampoo", 350),
    _leaf(4, ("廚房", "Kitchen"), ("炒鍋", "Woks"), "Wok", 1290),
    _leaf(4, ("廚房", "Kitchen"), ("保溫杯", "Insulated Bottles"), "Insulated Bottle", 590),
    _leaf(4, ("寢具", "Bedding"), ("枕頭", "Pillows"), "Pillow", 690),
    _leaf(4, ("寢具", "Bedding"), ("床單", "Bed Sheets"), "Bed Sheet", 990),
    _leaf(4, ("家具", "Furniture"), ("辦公椅", "Office Chairs"), "Office Chair", 3990),
    _leaf(4, ("燈具", "Lighting"), ("檯燈", "Desk Lamps"), "Desk Lamp", 890),
    _leaf(5, ("茶飲", "Tea"), ("烏龍茶", "Oolong Tea"), "Oolong Tea", 650),
    _leaf(5, ("咖啡", "Coffee"), ("咖啡豆", "Coffee Beans"), "Coffee Beans", 550),
    _leaf(5, ("零食", "Snacks"), ("牛肉乾", "Beef Jerky"), "Beef Jerky", 290),
    _leaf(5, ("零食", "Snacks"), ("堅果", "Mixed Nuts"), "Mixed Nuts", 350),
    _leaf(5, ("生鮮", "Fresh"), ("水果禮盒", "Fruit Gift Boxes"), "Fruit Gift Box", 1090),
    _leaf(6, ("健身", "Fitness"), ("瑜伽墊", "Yoga Mats"), "Yoga Mat", 690),
    _leaf(6, ("健身", "Fitness"), ("啞鈴", "Dumbbells"), "Dumbbells", 990),
    _leaf(6, ("戶外", "Outdoor"), ("帳篷", "Tents"), "Tent", 3990),
    _leaf(6, ("戶外", "Outdoor"), ("登山背包", "Hiking Backpacks"), "Hiking Backpack", 1990),
    _leaf(6, ("球類", "Ball Sports"), ("籃球", "Basketballs"), "Basketball", 890),
    _leaf(7, ("嬰兒用品", "Baby Care"), ("紙尿褲", "Diapers"), "Diapers", 590),
    _leaf(7, ("玩具", "Toys"), ("積木", "Building Blocks"), "Building Blocks", 1290),
    _leaf(7, ("童裝", "Kids Clothing"), ("兒童外套", "Kids Jackets"), "Kids Jacket", 990),
    _leaf(7, ("哺育", "Feeding"), ("奶瓶", "Baby Bottles"), "Baby Bottle", 450),
)
_LEAF_INDEX = {leaf.zh[2]: i for i, leaf in enumerate(LEAVES)}

# Bundles are bought together: the anchor's leaf → the partner's leaf.
COMPLEMENTS: dict[str, str] = {
    "連衣裙": "高跟鞋",
    "襯衫": "半身裙",
    "T恤": "牛仔褲",
    "外套": "T恤",
    "跑步鞋": "瑜伽墊",
    "智慧型手機": "手機殼",
    "筆記型電腦": "滑鼠",
    "藍牙耳機": "充電器",
    "智慧手錶": "充電器",
    "面霜": "精華液",
    "口紅": "女士香水",
    "炒鍋": "保溫杯",
    "枕頭": "床單",
    "辦公椅": "檯燈",
    "咖啡豆": "保溫杯",
    "烏龍茶": "堅果",
    "牛肉乾": "堅果",
    "瑜伽墊": "啞鈴",
    "帳篷": "登山背包",
    "紙尿褲": "奶瓶",
    "積木": "兒童外套",
    "籃球": "跑步鞋",
}

REGIONS = ("台北市", "新北市", "桃園市", "台中市", "台南市", "高雄市", "新竹市", "基隆市")
REGION_P = (0.24, 0.2, 0.1, 0.14, 0.08, 0.14, 0.06, 0.04)
TIERS = ("bronze", "silver", "gold", "vip")
TIER_P = (0.55, 0.27, 0.14, 0.04)
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

# Local (UTC+8) hour-of-day shape of traffic: quiet nights, evening peak.
_HOURS_LOCAL = np.array(
    [
        0.35,
        0.2,
        0.12,
        0.08,
        0.08,
        0.12,
        0.3,
        0.6,
        0.85,
        1.0,
        1.0,
        1.1,
        1.3,
        1.2,
        1.0,
        1.0,
        1.0,
        1.1,
        1.3,
        1.6,
        1.9,
        2.1,
        1.8,
        0.9,
    ]
)
_SALE_DAYS = {(6, 18), (11, 11), (12, 12)}

BEHAVIOUR_TASTES: tuple[str, ...] = ("brand_loyalty", "new_taste", "rating_taste", "position_decay")
"""Hidden tastes of ``data.behaviour.Tastes`` recorded in the truth besides price sensitivity."""

EVENTS_PER_SESSION = 7.0
"""Measured mean events per session of the simulator; sizes the number of sessions."""
EVENTS_PER_CHUNK = 1_000_000


@dataclass(frozen=True)
class ShopSpec:
    """What to generate. Every output byte is a function of this."""

    n_users: int = 2_000
    n_items: int = 1_000
    n_events: int = 100_000
    seed: int = 42
    start: date = date(2026, 9, 1)
    days: int = 90
    trend_days: int = 3

    def __post_init__(self) -> None:
        for name in ("n_users", "n_items", "n_events", "days"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.n_items < 2 * len(LEAVES):
            raise ValueError(f"n_items must be at least {2 * len(LEAVES)} (two per leaf category)")
        if not 1 <= self.trend_days <= self.days:
            raise ValueError("trend_days must be between 1 and days")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")

    @property
    def start_dt(self) -> datetime:
        return datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)

    @property
    def end_dt(self) -> datetime:
        return self.start_dt + timedelta(days=self.days)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["start"] = self.start.isoformat()
        return d


@dataclass(frozen=True)
class GenerateSummary:
    spec: ShopSpec
    out_dir: Path
    n_items: int
    n_users: int
    n_events: int
    n_sessions: int
    counts: dict[str, int]
    leaves_covered: int
    n_leaves: int
    n_bundles: int
    bundle_copurchases: int
    n_trending: int
    files: tuple[str, ...]
    seconds: float
    funnel: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Truth:
    """The hidden truth of a generated shop (see the module docstring)."""

    spec: dict[str, Any]
    categories: tuple[str, ...]
    bundles: tuple[tuple[str, str], ...]
    trending: tuple[str, ...]
    trend_days: int
    users: pa.Table
    """user_id, leaves, brands, price_sensitivity, activity (one row per user)."""

    def user_tastes(self) -> dict[str, dict[str, Any]]:
        """Per-user tastes as a dict (fine for small shops)."""
        return {r.pop("user_id"): r for r in self.users.to_pylist()}


# --------------------------------------------------------------------------------------
# Catalogue


class _Sampler:
    """Vectorized weighted sampling of items within groups (leaf, or leaf × variant)."""

    def __init__(self, keys: np.ndarray, weights: np.ndarray, n_keys: int) -> None:
        order = np.lexsort((np.arange(len(keys)), keys))
        self.items = order
        k = keys[order]
        w = weights[order]
        self.count = np.bincount(k, minlength=n_keys)
        totals = np.bincount(k, weights=w, minlength=n_keys)
        cum = np.cumsum(w)
        start = np.concatenate(([0], np.cumsum(self.count)[:-1]))
        before = np.concatenate(([0.0], cum))[start]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.cdf = k + (cum - before[k]) / totals[k]
        self.start = start

    def sample(self, keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per key; keys must have count > 0."""
        u = keys + rng.random(len(keys)) * (1 - 1e-12)
        pos = np.searchsorted(self.cdf, u, side="right")
        end = self.start[keys] + self.count[keys] - 1
        pos = np.clip(pos, self.start[keys], end)
        return self.items[pos]


@dataclass
class _Catalog:
    leaf: np.ndarray
    brand: np.ndarray
    variant: np.ndarray
    style: np.ndarray
    price: np.ndarray
    relprice: np.ndarray
    pop: np.ndarray
    created: np.ndarray  # seconds relative to spec start
    rating: np.ndarray  # stars, nan when the item has no rating
    ids: pa.Array
    leaf_user_p: np.ndarray
    leaf_nvar: np.ndarray
    leaf_top: np.ndarray
    by_leaf: _Sampler
    by_leaf_variant: _Sampler
    global_cdf: np.ndarray
    partner: np.ndarray
    bundles: list[tuple[int, int]]
    trending: np.ndarray
    queries: pa.Array
    rows: list[dict[str, Any]]


def _price(p: np.ndarray) -> np.ndarray:
    """Shop-style prices: …90 or …99 endings."""
    p = np.maximum(p, 30)
    return np.where(p >= 1000, np.round(p / 100) * 100 - 10, np.round(p / 10) * 10 - 1).astype(
        float
    )


def _build_catalog(spec: ShopSpec) -> _Catalog:
    rng = np.random.default_rng([spec.seed, 1])
    n, n_leaves = spec.n_items, len(LEAVES)
    leaf_top = np.array([leaf.top for leaf in LEAVES])
    leaf_nvar = np.array([len(_VARIANTS[TOPS[leaf.top].variant]) for leaf in LEAVES])
    # Catalogue share per leaf and user interest per leaf (both moderately skewed).
    leaf_size_w = rng.lognormal(0, 0.5, n_leaves)
    ranks = rng.permutation(n_leaves) + 1
    leaf_user_p = 1.0 / ranks**0.8
    leaf_user_p /= leaf_user_p.sum()
    # Every leaf gets at least two items, the rest by share.
    leaf = np.concatenate(
        [
            np.repeat(np.arange(n_leaves), 2),
            rng.choice(n_leaves, n - 2 * n_leaves, p=leaf_size_w / leaf_size_w.sum()),
        ]
    )
    leaf = leaf[rng.permutation(n)]
    top = leaf_top[leaf]
    n_brands = len(TOPS[0].brands)
    brand_in_top = rng.choice(n_brands, n, p=np.array([0.3, 0.22, 0.17, 0.13, 0.1, 0.08]))
    brand = top * n_brands + brand_in_top
    brand_premium = np.exp(
        np.random.default_rng([spec.seed, 5]).normal(0, 0.25, len(TOPS) * n_brands)
    )
    variant = (rng.random(n) * leaf_nvar[leaf]).astype(np.int64)
    style = rng.integers(0, 5, n)
    leaf_price = np.array([leaf_.price for leaf_ in LEAVES])
    raw = leaf_price[leaf] * brand_premium[brand] * rng.lognormal(0, 0.3, n)
    price = _price(raw)
    relprice = price / leaf_price[leaf]
    pop = rng.lognormal(0, 1.2, n)
    horizon = spec.days * 86400
    new = rng.random(n) < 0.08
    created = np.where(
        new, rng.integers(0, int(horizon * 0.9) + 1, n), -rng.integers(86400, 365 * 86400, n)
    )
    pop = np.where(new, pop * 2.0, pop)
    stock = np.where(rng.random(n) < 0.06, 0, rng.geometric(0.02, n))
    active = rng.random(n) >= 0.03
    rating = np.round(rng.uniform(3.2, 4.95, n), 1)
    has_rating = rng.random(n) >= 0.1
    merchant = rng.integers(1, 51, n)
    model_letter = rng.integers(0, 26, n)
    model_num = rng.integers(10, 1000, n)
    tag_hot = pop >= np.quantile(pop, 0.95)
    tag_sale = rng.random(n) < 0.08

    ids = [f"i{i}" for i in range(n)]
    rows: list[dict[str, Any]] = []
    start = spec.start_dt
    for i in range(n):
        lf = LEAVES[leaf[i]]
        tc = TOPS[lf.top]
        vkind = tc.variant
        v_zh, v_en = _VARIANTS[vkind][variant[i]]
        s_zh, s_en = tc.styles[style[i] % len(tc.styles)]
        b = tc.brands[brand_in_top[i]]
        b_en = _short_brand(b)
        model = f"{chr(65 + model_letter[i])}-{model_num[i]}"
        title = f"{v_zh}{s_zh}{lf.zh[2]} {v_en} {s_en} {lf.noun} - {b_en} {model}"
        desc = (
            f"{b}{s_zh}{lf.zh[2]}，{v_zh}款，{tc.feature[0]}。"
            f"{b_en} {s_en.lower()} {lf.noun.lower()} in {v_en.lower()}, {tc.feature[1]}."
        )
        tags = []
        if new[i]:
            tags.append("新品")
        if tag_hot[i]:
            tags.append("熱銷")
        if tag_sale[i]:
            tags.append("限時搶購")
        created_at = start + timedelta(seconds=int(created[i]))
        rows.append(
            {
                "item_id": ids[i],
                "title": title,
                "description": desc,
                "category": list(lf.zh),
                "brand": b_en,
                "price": float(price[i]),
                "currency": "TWD",
                "tags": tags,
                "attributes": {
                    "category_en": " > ".join(lf.en),
                    vkind: v_en.lower(),
                    "style": s_en.lower(),
                },
                "stock": int(stock[i]),
                "is_active": bool(active[i]),
                "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "merchant_id": f"m{merchant[i]}",
                "rating": float(rating[i]) if has_rating[i] else None,
            }
        )

    by_leaf = _Sampler(leaf, pop, n_leaves)
    by_leaf_variant = _Sampler(leaf * MAX_VARIANTS + variant, pop, n_leaves * MAX_VARIANTS)
    # Shop-wide "popular" list: item popularity scaled so leaves get the users' interest share.
    leaf_pop_total = np.bincount(leaf, weights=pop, minlength=n_leaves)
    gp = pop * leaf_user_p[leaf] / leaf_pop_total[leaf]
    global_cdf = np.cumsum(gp / gp.sum())

    # Bundles: popular old anchors, each with a popular old partner in the complement leaf.
    old = created < 0
    n_bundles = int(np.clip(n // 100, 5, 500))
    partner = np.full(n, -1, dtype=np.int64)
    bundles: list[tuple[int, int]] = []
    cand = np.flatnonzero(old & active & (stock > 0))
    w = gp[cand] ** 1.5
    anchors = rng.choice(cand, size=min(len(cand), n_bundles * 3), replace=False, p=w / w.sum())
    used: set[int] = set()
    for a in anchors:
        if len(bundles) >= n_bundles:
            break
        lname = LEAVES[leaf[a]].zh[2]
        target = _LEAF_INDEX.get(COMPLEMENTS.get(lname, ""), -1)
        pool = np.flatnonzero(old & active & (leaf == target)) if target >= 0 else np.array([], int)
        if len(pool) == 0:
            pool = np.flatnonzero(
                old & active & (leaf_top[leaf] == leaf_top[leaf[a]]) & (leaf != leaf[a])
            )
        pool = pool[~np.isin(pool, list(used | {int(a)}))]
        if len(pool) == 0 or int(a) in used:
            continue
        top_pool = pool[np.argsort(-pop[pool], kind="stable")][: max(1, len(pool) // 3)]
        b = int(top_pool[rng.integers(0, len(top_pool))])
        partner[a] = b
        bundles.append((int(a), b))
        used.update((int(a), b))

    # Trending: mid-popularity old items that spike at the end.
    n_trend = int(np.clip(n // 200, 3, 50))
    q40, q80 = np.quantile(pop, [0.4, 0.8])
    tcand = np.flatnonzero(old & active & (stock > 0) & (pop >= q40) & (pop <= q80) & (partner < 0))
    tcand = tcand[~np.isin(tcand, list(used))]
    trending = np.sort(rng.choice(tcand, size=min(n_trend, len(tcand)), replace=False))

    # Query vocabulary: [leaf, variant + 1 (0 = none), lang (0 en, 1 zh)].
    queries: list[str] = []
    for lf in LEAVES:
        variants = _VARIANTS[TOPS[lf.top].variant]
        for v in range(MAX_VARIANTS + 1):
            if v == 0:
                queries += [lf.noun.lower(), lf.zh[2]]
            elif v - 1 < len(variants):
                vz, ve = variants[v - 1]
                queries += [
                    f"{ve} {lf.noun}".lower(),
                    f"{lf.zh[2]} {vz}" if v % 2 else f"{vz}{lf.zh[2]}",
                ]
            else:
                queries += ["", ""]
    return _Catalog(
        leaf=leaf,
        brand=brand,
        variant=variant,
        style=style,
        price=price,
        relprice=relprice,
        pop=pop,
        created=created,
        rating=np.where(has_rating, rating, np.nan),
        ids=pa.array(ids, pa.string()),
        leaf_user_p=leaf_user_p,
        leaf_nvar=leaf_nvar,
        leaf_top=leaf_top,
        by_leaf=by_leaf,
        by_leaf_variant=by_leaf_variant,
        global_cdf=global_cdf,
        partner=partner,
        bundles=bundles,
        trending=trending,
        queries=pa.array(queries, pa.string()),
        rows=rows,
    )


# --------------------------------------------------------------------------------------
# Users and events, one chunk of users at a time


def _short_brand(name: str) -> str:
    """ "北境 Northland" → "Northland": the Latin name goes in titles and the brand field."""
    return name.split(" ")[-1] if " " in name else name


BRAND_NAMES: tuple[str, ...] = tuple(_short_brand(b) for t in TOPS for b in t.brands)
"""Brand field values, indexed by global brand number (top category × 6 + rank)."""
LEAF_PATHS: tuple[str, ...] = tuple(leaf.path for leaf in LEAVES)


def _day_weights(spec: ShopSpec) -> np.ndarray:
    w = np.empty(spec.days)
    for d in range(spec.days):
        day = spec.start + timedelta(days=d)
        w[d] = (1.35 if day.weekday() >= 4 else 1.0) * (1 + 0.3 * d / spec.days)
        if (day.month, day.day) in _SALE_DAYS:
            w[d] *= 2.5
    return w / w.sum()


@dataclass
class _ChunkOut:
    users: list[dict[str, Any]]
    truth: dict[str, list[Any]]
    events: pa.Table
    n_sessions: int
    bundle_copurchases: int


def _in_prefs(top3: np.ndarray, n_pref: np.ndarray, u: np.ndarray, lf: np.ndarray) -> np.ndarray:
    t = top3[u]
    k = n_pref[u]
    return (t[:, 0] == lf) | ((k > 1) & (t[:, 1] == lf)) | ((k > 2) & (t[:, 2] == lf))


def _chunk(
    cat: _Catalog,
    spec: ShopSpec,
    c: int,
    u0: int,
    u1: int,
    s0: int,
    e0: int,
    day_p: np.ndarray,
    hour_p: np.ndarray,
) -> _ChunkOut:
    rng = np.random.default_rng([spec.seed, 2, c])
    n = u1 - u0
    n_leaves = len(LEAVES)
    nb = len(TOPS[0].brands)

    # ---- hidden tastes
    keys = np.log(cat.leaf_user_p)[None, :] + rng.gumbel(size=(n, n_leaves))
    top3 = np.argsort(-keys, axis=1, kind="stable")[:, :3]
    n_pref = rng.choice(np.array([1, 2, 3]), size=n, p=[0.35, 0.4, 0.25])
    mix = np.array([[1.0, 0, 0], [0.65, 0.35, 0], [0.5, 0.3, 0.2]])[n_pref - 1]
    pb1 = cat.leaf_top[top3[:, 0]] * nb + rng.integers(0, nb, n)
    second = top3[np.arange(n), (rng.random(n) * n_pref).astype(np.int64)]
    pb2 = cat.leaf_top[second] * nb + rng.integers(0, nb, n)
    sens = rng.beta(2, 2, n)
    # the other behaviour tastes come from a stream of their own, so adding them left every
    # earlier draw (leaves, brands, sessions) as it was
    brng = np.random.default_rng([spec.seed, 7, c])
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

    # ---- sessions
    m = spec.n_events / (spec.n_users * EVENTS_PER_SESSION)
    w = activity / np.exp(0.5)
    ns = 1 + rng.poisson((m - 1) * w) if m >= 1.5 else rng.poisson(m * w)
    S = int(ns.sum())
    s_user = np.repeat(np.arange(n), ns)
    horizon = spec.days * 86400
    s_day = rng.choice(spec.days, S, p=day_p)
    s_t0 = s_day * 86400 + rng.choice(24, S, p=hour_p) * 3600 + rng.integers(0, 3600, S)
    explore = rng.random(S) < 0.15
    cum = np.cumsum(mix, axis=1)[s_user]
    slot = (rng.random(S)[:, None] > cum[:, :2]).sum(axis=1)
    s_leaf = top3[s_user, slot]
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
    u_global = u0 + np.arange(n)
    u_variant = ((u_global * 2654435761) >> 7) % 2

    def pick(sess: np.ndarray) -> np.ndarray:
        """Items a shopper looks at in these sessions: the (searched) intent leaf."""
        out = np.empty(len(sess), dtype=np.int64)
        seg = use_seg[sess] & is_search[sess]
        if seg.any():
            out[seg] = cat.by_leaf_variant.sample(seg_key[sess[seg]], rng)
        if (~seg).any():
            out[~seg] = cat.by_leaf.sample(s_leaf[sess[~seg]], rng)
        return out

    # columns of the chunk's events
    E: dict[str, list[np.ndarray]] = {
        k: [] for k in ("t", "sess", "item", "type", "value", "pos", "req", "q")
    }

    def emit(
        t: np.ndarray,
        sess: np.ndarray,
        item: np.ndarray | int,
        type_: str,
        value: np.ndarray | None = None,
        pos: np.ndarray | None = None,
        req: np.ndarray | bool = False,
        q: np.ndarray | bool = False,
    ) -> None:
        k = len(t)
        E["t"].append(t.astype(np.int64))
        E["sess"].append(sess.astype(np.int64))
        E["item"].append(np.broadcast_to(np.asarray(item, dtype=np.int64), (k,)))
        E["type"].append(np.full(k, _T[type_], dtype=np.int8))
        E["value"].append(np.full(k, np.nan) if value is None else value.astype(float))
        E["pos"].append(np.full(k, -1, dtype=np.int64) if pos is None else pos.astype(np.int64))
        E["req"].append(np.broadcast_to(np.asarray(req, dtype=bool), (k,)))
        E["q"].append(np.broadcast_to(np.asarray(q, dtype=bool), (k,)))

    # search
    ss = np.flatnonzero(is_search)
    emit(s_t0[ss], ss, -1, "search", q=True)

    # impressions (search results or the home feed)
    has_imp = is_search | (rng.random(S) < 0.45)
    n_imp = np.where(has_imp, rng.integers(4, 9, S), 0)
    imp_sess = np.repeat(np.arange(S), n_imp)
    starts = np.repeat(np.cumsum(n_imp) - n_imp, n_imp)
    imp_pos = np.arange(len(imp_sess)) - starts
    from_leaf = is_search[imp_sess] | (rng.random(len(imp_sess)) < 0.55)
    imp_item = np.empty(len(imp_sess), dtype=np.int64)
    imp_item[from_leaf] = pick(imp_sess[from_leaf])
    k = int((~from_leaf).sum())
    imp_item[~from_leaf] = np.minimum(
        np.searchsorted(cat.global_cdf, rng.random(k)), len(cat.pop) - 1
    )
    imp_t = s_t0[imp_sess] + 3
    ok = cat.created[imp_item] <= imp_t
    imp_sess, imp_pos, imp_item, imp_t = imp_sess[ok], imp_pos[ok], imp_item[ok], imp_t[ok]
    emit(imp_t, imp_sess, imp_item, "impression", pos=imp_pos, req=True, q=is_search[imp_sess])

    def match(u: np.ndarray, item: np.ndarray, t: np.ndarray) -> Match:
        return Match(
            in_leaf=_in_prefs(top3, n_pref, u, cat.leaf[item]),
            brand=(cat.brand[item] == pb1[u]) | (cat.brand[item] == pb2[u]),
            relprice=cat.relprice[item],
            is_new=(t - cat.created[item]) < NEW_DAYS * 86400,
            rating=cat.rating[item],
        )

    # clicks on impressions (position bias × appeal, data.behaviour), each followed by a view
    iu = s_user[imp_sess]
    p_click = click_prob(
        tastes.take(iu), match(iu, imp_item, imp_t), imp_pos, boost=0.4 * is_search[imp_sess]
    )
    clicked = brng.random(len(imp_sess)) < p_click
    c_sess, c_item, c_pos = imp_sess[clicked], imp_item[clicked], imp_pos[clicked]
    c_t = imp_t[clicked] + 5 + rng.integers(0, 120, len(c_sess))
    emit(c_t, c_sess, c_item, "click", pos=c_pos, req=True, q=is_search[c_sess])

    # direct product views in the intent leaf, plus trending items at the end
    n_dv = rng.geometric(0.4, S)
    dv_sess = np.repeat(np.arange(S), n_dv)
    dv_item = pick(dv_sess)
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
    emit(v_t, v_sess, v_item, "view")

    # the funnel, driven by the hidden taste
    u = s_user[v_sess]
    V = len(v_sess)
    vm = match(u, v_item, v_t)
    in_pref, brand_pref = vm.in_leaf, vm.brand
    vt = tastes.take(u)
    cart = rng.random(V) < cart_prob(vt, vm)
    buy = cart & (rng.random(V) < buy_prob(vt, vm))
    remove = cart & ~buy & (rng.random(V) < 0.25)
    fav = rng.random(V) < 0.012 * (1 + in_pref + brand_pref)
    share = rng.random(V) < 0.004
    emit(v_t[fav] + rng.integers(3, 60, int(fav.sum())), v_sess[fav], v_item[fav], "favorite")
    emit(v_t[share] + rng.integers(3, 90, int(share.sum())), v_sess[share], v_item[share], "share")
    cart_t = v_t + rng.integers(20, 300, V)
    emit(cart_t[cart], v_sess[cart], v_item[cart], "add_to_cart", value=np.ones(int(cart.sum())))
    emit(
        cart_t[remove] + rng.integers(30, 600, int(remove.sum())),
        v_sess[remove],
        v_item[remove],
        "remove_from_cart",
    )
    p_sess, p_item = v_sess[buy], v_item[buy]
    p_t = cart_t[buy] + rng.integers(60, 900, len(p_sess))

    # planted bundles: the partner is bought in the same session
    part = cat.partner[p_item]
    bmask = (part >= 0) & (rng.random(len(p_item)) < 0.75)
    b_sess, b_item, b_t = p_sess[bmask], part[bmask], p_t[bmask]
    emit(b_t + 20, b_sess, b_item, "view")
    emit(b_t + 40, b_sess, b_item, "add_to_cart", value=np.ones(len(b_sess)))
    p_sess = np.concatenate([p_sess, b_sess])
    p_item = np.concatenate([p_item, b_item])
    p_t = np.concatenate([p_t, b_t + 60])
    emit(p_t, p_sess, p_item, "purchase", value=cat.price[p_item])

    # after the purchase: some ratings, a few refunds
    P = len(p_sess)
    rated = rng.random(P) < 0.2
    pu = s_user[p_sess]
    bp = (cat.brand[p_item] == pb1[pu]) | (cat.brand[p_item] == pb2[pu])
    stars = np.clip(np.round(3.4 + 1.0 * bp + rng.normal(0, 0.9, P)), 1, 5)
    emit(
        p_t[rated] + rng.integers(86400, 10 * 86400, int(rated.sum())),
        p_sess[rated],
        p_item[rated],
        "rate",
        value=stars[rated],
    )
    refunded = rng.random(P) < 0.03
    emit(
        p_t[refunded] + rng.integers(2 * 86400, 14 * 86400, int(refunded.sum())),
        p_sess[refunded],
        p_item[refunded],
        "refund",
        value=cat.price[p_item[refunded]],
    )

    # ---- assemble, drop what falls after the horizon, order by time
    t = np.concatenate(E["t"])
    keep = t < horizon
    cols = {k: np.concatenate(v)[keep] for k, v in E.items()}
    order = np.lexsort((cols["pos"], cols["type"], cols["sess"], cols["t"]))
    cols = {k: v[order] for k, v in cols.items()}
    N = len(order)
    sess = cols["sess"]
    user_local = s_user[sess]
    is_feed = cols["req"] & ~is_search[sess]

    def ids(prefix: str, nums: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(
            prefix, pc.cast(pa.array(nums, pa.int64()), pa.string()), ""
        )

    user_ids = pa.array(truth["user_id"], pa.string())
    item = cols["item"]
    start_us = int(spec.start_dt.timestamp()) * 1_000_000
    qi = pa.array(qidx[sess], mask=~cols["q"])
    null_str = pa.nulls(N, pa.string())
    table = pa.Table.from_arrays(
        [
            ids(f"s{spec.seed}-e", e0 + np.arange(N)),
            user_ids.take(pa.array(user_local)),
            cat.ids.take(pa.array(item, mask=item < 0)),
            pa.array(TYPES, pa.string()).take(pa.array(cols["type"].astype(np.int64))),
            pa.array(start_us + cols["t"] * 1_000_000, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            pa.array(cols["value"], mask=np.isnan(cols["value"])),
            ids(f"s{spec.seed}-s", s0 + sess),
            cat.queries.take(qi),
            pa.array(cols["pos"], mask=cols["pos"] < 0).cast(pa.int32()),
            pc.if_else(pa.array(cols["req"]), ids(f"s{spec.seed}-r", s0 + sess), null_str),
            pc.if_else(pa.array(is_feed), pa.scalar(EXPERIMENT), null_str),
            pc.if_else(
                pa.array(is_feed), pa.array(np.array(["A", "B"])[u_variant[user_local]]), null_str
            ),
            pa.array(CHANNELS).take(pa.array(s_channel[sess])),
            pa.array(DEVICES).take(pa.array(s_device[sess])),
            pc.if_else(
                pa.array(cols["req"]),
                pa.array(SURFACES).take(pa.array(is_search[sess].astype(np.int64))),
                null_str,
            ),
        ],
        schema=EVENT_SCHEMA,
    )
    copurchases = int((b_t + 60 < horizon).sum())
    return _ChunkOut(users, truth, table, S, copurchases)


# --------------------------------------------------------------------------------------
# Public API


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")


def generate(
    spec: ShopSpec,
    out_dir: Path | str,
    *,
    progress: bool = True,
    events_format: EventsFormat = "auto",
) -> GenerateSummary:
    """Generate a shop into ``out_dir`` (created if missing; generated files are overwritten)."""
    from tqdm import tqdm

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet = events_format in ("auto", "parquet", "both")
    write_jsonl = events_format in ("jsonl", "both") or (
        events_format == "auto" and spec.n_events <= JSONL_AUTO_LIMIT
    )

    cat = _build_catalog(spec)
    _write_jsonl(out / "items.jsonl", cat.rows)
    day_p = _day_weights(spec)
    hour_p = np.roll(_HOURS_LOCAL, -8)  # local UTC+8 → UTC
    hour_p = hour_p / hour_p.sum()

    per_user = max(spec.n_events / spec.n_users, 1.0)
    chunk_users = max(1000, int(EVENTS_PER_CHUNK / per_user))
    counts: Counter[str] = Counter()
    n_events = n_sessions = copurchases = 0
    leaves_seen = np.zeros(len(LEAVES), dtype=bool)
    truth_users: list[dict[str, list[Any]]] = []
    small_truth = spec.n_users <= TRUTH_USERS_IN_JSON_LIMIT
    files = ["items.jsonl", "users.jsonl"]
    writer = (
        pq.ParquetWriter(out / "events.parquet", EVENT_SCHEMA, compression="zstd")
        if write_parquet
        else None
    )
    ev_jsonl = (
        (out / "events.jsonl").open("w", encoding="utf-8", newline="\n") if write_jsonl else None
    )
    tw = pq.ParquetWriter(out / "truth_users.parquet", _TRUTH_SCHEMA, compression="zstd")
    try:
        with (
            (out / "users.jsonl").open("w", encoding="utf-8", newline="\n") as uf,
            tqdm(
                total=spec.n_events, desc="events", unit="ev", disable=not progress, unit_scale=True
            ) as bar,
        ):
            for c, u0 in enumerate(range(0, spec.n_users, chunk_users)):
                u1 = min(spec.n_users, u0 + chunk_users)
                ch = _chunk(cat, spec, c, u0, u1, n_sessions, n_events, day_p, hour_p)
                for r in ch.users:
                    uf.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
                    uf.write("\n")
                tw.write_table(pa.Table.from_pydict(ch.truth, schema=_TRUTH_SCHEMA))
                if small_truth:
                    truth_users.append(ch.truth)
                if writer is not None:
                    writer.write_table(ch.events, row_group_size=max(1, ch.events.num_rows))
                if ev_jsonl is not None:
                    for row in table_to_dicts(ch.events):
                        ev_jsonl.write(dumps(row))
                        ev_jsonl.write("\n")
                vc = pc.value_counts(ch.events.column("type"))
                for entry in vc.to_pylist():
                    counts[entry["values"]] += entry["counts"]
                items_idx = pc.drop_null(ch.events.column("item_id"))
                seen = np.unique(
                    np.asarray(pc.cast(pc.utf8_slice_codeunits(items_idx, 1), pa.int64()))
                )
                leaves_seen[np.unique(cat.leaf[seen])] = True
                n_events += ch.events.num_rows
                n_sessions += ch.n_sessions
                copurchases += ch.bundle_copurchases
                bar.update(ch.events.num_rows)
            bar.total = n_events  # the requested count is approximate
            bar.refresh()
    finally:
        if writer is not None:
            writer.close()
        if ev_jsonl is not None:
            ev_jsonl.close()
        tw.close()
    if write_parquet:
        files.append("events.parquet")
    if write_jsonl:
        files.append("events.jsonl")

    item_id = cat.ids.to_pylist()
    truth: dict[str, Any] = {
        "spec": spec.to_json(),
        "categories": [leaf.path for leaf in LEAVES],
        "bundles": [[item_id[a], item_id[b]] for a, b in cat.bundles],
        "trending": [item_id[i] for i in cat.trending],
        "trend_days": spec.trend_days,
        "counts": {
            "items": spec.n_items,
            "users": spec.n_users,
            "events": n_events,
            "sessions": n_sessions,
            "by_type": dict(sorted(counts.items())),
        },
    }
    if small_truth:
        users_truth: dict[str, Any] = {}
        for t in truth_users:
            for i, uid in enumerate(t["user_id"]):
                users_truth[uid] = {
                    k: t[k][i]
                    for k in (
                        "leaves", "brands", "price_sensitivity", "activity", *BEHAVIOUR_TASTES
                    )
                }
        truth["users"] = users_truth
    (out / "truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    files += ["truth.json", "truth_users.parquet"]

    def rate(a: str, b: str) -> float:
        return counts[a] / counts[b] if counts[b] else 0.0

    summary = GenerateSummary(
        spec=spec,
        out_dir=out,
        n_items=spec.n_items,
        n_users=spec.n_users,
        n_events=n_events,
        n_sessions=n_sessions,
        counts=dict(counts),
        leaves_covered=int(leaves_seen.sum()),
        n_leaves=len(LEAVES),
        n_bundles=len(cat.bundles),
        bundle_copurchases=copurchases,
        n_trending=len(cat.trending),
        files=tuple(files),
        seconds=time.perf_counter() - t_start,
        funnel={
            "click/impression": rate("click", "impression"),
            "add_to_cart/view": rate("add_to_cart", "view"),
            "purchase/add_to_cart": rate("purchase", "add_to_cart"),
            "purchase/view": rate("purchase", "view"),
            "purchases/session": counts["purchase"] / n_sessions if n_sessions else 0.0,
        },
    )
    log.info(
        "generated %d events for %d users and %d items in %.1fs into %s",
        n_events,
        spec.n_users,
        spec.n_items,
        summary.seconds,
        out,
    )
    return summary


_TRUTH_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("leaves", pa.list_(pa.string())),
        ("brands", pa.list_(pa.string())),
        ("price_sensitivity", pa.float64()),
        ("activity", pa.float64()),
        *((k, pa.float64()) for k in BEHAVIOUR_TASTES),
    ]
)


def load_truth(out_dir: Path | str) -> Truth:
    """Read the hidden truth written by :func:`generate`."""
    out = Path(out_dir)
    raw = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    users = pq.read_table(out / "truth_users.parquet")
    return Truth(
        spec=raw["spec"],
        categories=tuple(raw["categories"]),
        bundles=tuple((a, b) for a, b in raw["bundles"]),
        trending=tuple(raw["trending"]),
        trend_days=int(raw["trend_days"]),
        users=users,
    )
