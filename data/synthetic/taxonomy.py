"""The synthetic shop's catalogue vocabulary: 8 top categories, 42 leaves, brands, variants,
styles, and which leaf's items are bought with which.

Plain data: the catalog generator (:mod:`data.synthetic.catalog`) draws items from it, the
search relevance set and the simulated storefront read it to know what a shop holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
VARIANTS = {"colour": COLOURS, "flavour": FLAVOURS, "scent": SCENTS}
MAX_VARIANTS = max(len(v) for v in VARIANTS.values())


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
LEAF_INDEX = {leaf.zh[2]: i for i, leaf in enumerate(LEAVES)}

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


def short_brand(name: str) -> str:
    """ "北境 Northland" → "Northland": the Latin name goes in titles and the brand field."""
    return name.split(" ")[-1] if " " in name else name


BRAND_NAMES: tuple[str, ...] = tuple(short_brand(b) for t in TOPS for b in t.brands)
"""Brand field values, indexed by global brand number (top category × 6 + rank)."""
LEAF_PATHS: tuple[str, ...] = tuple(leaf.path for leaf in LEAVES)
