"""Queries written the way shoppers write them, judged by rules on catalog fields.

`search.relevance.make_queries` draws its queries from the same templates as the synthetic
titles, so it scores near 1.0 on any engine that matches words. This set is written by hand
instead, in the words of shoppers in Taiwan, Hong Kong and mainland China, for the
synthetic shop's catalog (`data.synthetic`), and each query carries a rule on the items'
structured fields (leaf category, colour attribute, price), never on their titles:

* grade 2: the item is in one of the rule's leaves and has the rule's colour and price
  (when the rule names them); grade 1: in one of the leaves but another colour or price,
  or in one of the rule's "near" leaves.

Classes (`CLASSES`): ``mainland`` (mainland words for Taiwan-written titles: 智能手表 for
智慧手錶), ``hongkong`` (手提電腦, 波鞋), ``colour`` (a colour word that differs from the
title's: 粉紅色 where titles say 粉色), ``typo-synonym`` (a typo of a word that reaches the
catalog only through a synonym: ``sneekers``), ``typo-pair`` (a typo next to another word:
``red drses``), ``brand-category`` (a brand with no item in the category: shoppers expect the
category), ``price-size`` (``500元以下``, ``大尺碼``: the catalog has no size field, so a size
word must not empty the list) and ``semantic`` (no word of the query names a category).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from data.models import Item

CLASSES = (
    "mainland",
    "hongkong",
    "colour",
    "typo-synonym",
    "typo-pair",
    "brand-category",
    "price-size",
    "semantic",
)


@dataclass(frozen=True)
class Judge:
    leaves: frozenset[str]
    """Leaf categories (Chinese names as in the catalog) that answer the query."""
    colour: str | None = None
    """``item.attributes["colour"]`` wanted for grade 2."""
    price_max: float | None = None
    price_min: float | None = None
    near: frozenset[str] = frozenset()
    """Leaves that answer it in part (grade 1)."""

    def grade(self, item: Item) -> int:
        leaf = item.category[-1] if item.category else None
        if leaf in self.near:
            return 1
        if leaf not in self.leaves:
            return 0
        if self.colour is not None and item.attributes.get("colour") != self.colour:
            return 1
        if self.price_max is not None and item.price > self.price_max:
            return 1
        if self.price_min is not None and item.price < self.price_min:
            return 1
        return 2


def _j(
    leaves: str,
    colour: str | None = None,
    *,
    lte: float | None = None,
    gte: float | None = None,
    near: str = "",
) -> Judge:
    return Judge(frozenset(leaves.split()), colour, lte, gte, frozenset(near.split()))


QUERIES: tuple[tuple[str, str, Judge], ...] = (
    # mainland vocabulary, Taiwan-written titles
    ("mainland", "智能手表", _j("智慧手錶")),
    ("mainland", "笔记本电脑", _j("筆記型電腦")),
    ("mainland", "智能手机", _j("智慧型手機")),
    ("mainland", "无线鼠标", _j("滑鼠")),
    ("mainland", "洗发水", _j("洗髮精")),
    ("mainland", "跑鞋", _j("跑步鞋")),
    ("mainland", "台灯", _j("檯燈")),
    ("mainland", "黑色 笔记本电脑", _j("筆記型電腦", "black")),
    ("mainland", "纸尿裤", _j("紙尿褲")),
    ("mainland", "电脑椅", _j("辦公椅")),
    # Hong Kong vocabulary
    ("hongkong", "手提電腦", _j("筆記型電腦")),
    ("hongkong", "波鞋", _j("跑步鞋")),
    ("hongkong", "洗頭水", _j("洗髮精")),
    ("hongkong", "尿片", _j("紙尿褲")),
    ("hongkong", "枱燈", _j("檯燈")),
    ("hongkong", "藍牙耳筒", _j("藍牙耳機")),
    ("hongkong", "行山背囊", _j("登山背包")),
    ("hongkong", "保溫瓶", _j("保溫杯")),
    ("hongkong", "白色 手提電腦", _j("筆記型電腦", "white")),
    # colour words that differ from the title's
    ("colour", "粉紅色連衣裙", _j("連衣裙", "pink")),
    ("colour", "粉红 半身裙", _j("半身裙", "pink")),
    ("colour", "粉紅 T恤", _j("T恤", "pink")),
    ("colour", "深藍色 牛仔褲", _j("牛仔褲", "blue")),
    ("colour", "米白色 外套", _j("外套", "beige")),
    ("colour", "淺灰色 襯衫", _j("襯衫", "gray")),
    ("colour", "紅 高跟鞋", _j("高跟鞋", "red")),
    ("colour", "桃紅色 瑜伽墊", _j("瑜伽墊", "pink")),
    # typos of words that reach the catalog only through a synonym
    ("typo-synonym", "sneekers", _j("跑步鞋")),
    ("typo-synonym", "snaekers", _j("跑步鞋")),
    ("typo-synonym", "celphone", _j("智慧型手機")),
    ("typo-synonym", "smartphnoe", _j("智慧型手機")),
    ("typo-synonym", "trainres", _j("跑步鞋")),
    ("typo-synonym", "thermoss", _j("保溫杯")),
    ("typo-synonym", "earbudz", _j("藍牙耳機")),
    # a typo next to another word
    ("typo-pair", "red drses", _j("連衣裙", "red")),
    ("typo-pair", "blak jeans", _j("牛仔褲", "black")),
    ("typo-pair", "pnik dress", _j("連衣裙", "pink")),
    ("typo-pair", "bleu jacket", _j("外套", "blue")),
    ("typo-pair", "yelow smartwatch", _j("智慧手錶", "yellow")),
    ("typo-pair", "grean yoga mat", _j("瑜伽墊", "green")),
    ("typo-pair", "purple lapotp", _j("筆記型電腦", "purple")),
    # a brand with no item in the category: the category is what shoppers want
    ("brand-category", "Nova 跑步鞋", _j("跑步鞋")),
    ("brand-category", "Apex 連衣裙", _j("連衣裙")),
    ("brand-category", "MiMi smartwatch", _j("智慧手錶")),
    ("brand-category", "Bloom running shoes", _j("跑步鞋")),
    ("brand-category", "TrailFox laptop", _j("筆記型電腦")),
    ("brand-category", "Hearth 瑜伽墊", _j("瑜伽墊")),
    ("brand-category", "Pixelo jacket", _j("外套")),
    # price and size words
    ("price-size", "500元以下 藍牙耳機", _j("藍牙耳機", lte=500)),
    ("price-size", "耳機 1000元以下", _j("藍牙耳機", lte=1000)),
    ("price-size", "3000元以上 跑步鞋", _j("跑步鞋", gte=3000)),
    ("price-size", "300到800元 面霜", _j("面霜", lte=800, gte=300)),
    ("price-size", "smartwatch under 5000", _j("智慧手錶", lte=5000)),
    ("price-size", "大尺碼 連衣裙", _j("連衣裙")),
    ("price-size", "大码 外套", _j("外套")),
    ("price-size", "plus size dress", _j("連衣裙")),
    # meaning without a category word
    ("semantic", "something warm for winter hiking", _j("登山背包 帳篷 外套", near="兒童外套")),
    ("semantic", "coffee lover gift", _j("咖啡豆", near="保溫杯")),
    ("semantic", "home office setup", _j("辦公椅 檯燈", near="滑鼠 筆記型電腦")),
)


@dataclass(frozen=True)
class ShopperQuery:
    text: str
    group: str
    judge: Judge
    relevant: dict[str, int]
    """item_id → grade (1 or 2), over active items."""


def shopper_queries(items: Sequence[Item]) -> list[ShopperQuery]:
    """The set, judged on ``items`` (the synthetic shop's catalog). A query none of whose
    leaves are in the catalog is left out."""
    active = [i for i in items if i.is_active]
    out = []
    for group, text, judge in QUERIES:
        relevant = {i.item_id: g for i in active if (g := judge.grade(i)) > 0}
        if any(g == 2 for g in relevant.values()):
            out.append(ShopperQuery(text, group, judge, relevant))
    return out
