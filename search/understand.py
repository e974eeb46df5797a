"""Query understanding: price words in the shopper's text become a price filter.

``500元以下 藍牙耳機`` → text ``藍牙耳機`` + ``price ≤ 500``; the same for ``under 500``,
``500以內``, ``低於500``, ``1000元以上``, ``over $1000``, ``300-800元``, ``300到800``. A number
alone (a model number, ``iPhone 15``) is never read as a price: it needs a currency word or a
comparison word next to it. Applied by `search.engine.SearchEngine` before any backend sees
the text, so both backends filter the same way. A price filter the request already carries
wins: the words are then only removed from the text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pydantic import ValidationError

from search.query import RangeFilter

_NUM = r"(\d+(?:\.\d+)?)\s*(?:k|千)?"
_CUR_BEFORE = r"(?:\$|nt\$|ntd|twd|rmb|hk\$|¥|￥)?\s*"
_CUR_AFTER = r"\s*(?:元|塊|块|蚊|圓|ntd|twd|rmb|dollars?|nt)?"
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "between",
        re.compile(
            rf"{_CUR_BEFORE}{_NUM}{_CUR_AFTER}\s*(?:-|~|～|到|至|to)\s*{_CUR_BEFORE}{_NUM}"
            rf"\s*(?:元|塊|块|蚊|圓|ntd|twd|rmb|dollars?)(?:之間|之间)?"
        ),
    ),
    (
        "lte",
        re.compile(
            rf"{_CUR_BEFORE}{_NUM}{_CUR_AFTER}"
            r"\s*(?:以下|以內|以内|之內|之内|內|内|或以下|below|or less)"
        ),
    ),
    (
        "lte",
        re.compile(
            rf"(?:under|below|less than|cheaper than|up to|低於|低于|不超過|不超过|少於|少于|<=?)"
            rf"\s*{_CUR_BEFORE}{_NUM}{_CUR_AFTER}"
        ),
    ),
    ("gte", re.compile(rf"{_CUR_BEFORE}{_NUM}{_CUR_AFTER}\s*(?:以上|或以上|起|and up|or more|\+)")),
    (
        "gte",
        re.compile(
            rf"(?:over|above|more than|高於|高于|超過|超过|>=?)\s*{_CUR_BEFORE}{_NUM}{_CUR_AFTER}"
        ),
    ),
)


@dataclass(frozen=True)
class Understood:
    text: str
    """The text without the words read as a price."""
    price: RangeFilter | None
    """The price range those words asked for."""
    phrase: str | None
    """The words read as a price, as typed (normalized width and case)."""


def _amount(raw: str, whole: str) -> float:
    value = float(raw)
    tail = whole[whole.find(raw) + len(raw) :].lstrip()
    if tail[:1] in ("k", "千"):
        value *= 1000
    return value


def understand(text: str) -> Understood:
    """Read the first price phrase of ``text`` (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", text).lower()
    for kind, pattern in _PATTERNS:
        m = pattern.search(folded)
        if m is None:
            continue
        phrase = m.group(0)
        try:
            price = _price(kind, m, phrase)
        except ValidationError:  # an amount beyond the filters' bounds: not a price
            return Understood(text, None, None)
        rest = (folded[: m.start()] + " " + folded[m.end() :]).strip()
        rest = re.sub(r"\s+", " ", rest)
        return Understood(rest, price, phrase.strip())
    return Understood(text, None, None)


def _price(kind: str, m: re.Match[str], phrase: str) -> RangeFilter:
    """The filter a matched price phrase asks for."""
    if kind == "between":
        low = _amount(m.group(1), phrase)
        high = _amount(m.group(2), phrase[phrase.find(m.group(1)) + len(m.group(1)) :])
        low, high = min(low, high), max(low, high)
        return RangeFilter(field="price", gte=low, lte=high)
    if kind == "lte":
        return RangeFilter(field="price", lte=_amount(m.group(1), phrase))
    return RangeFilter(field="price", gte=_amount(m.group(1), phrase))
