"""Text primitives search, the rules, search analytics and the content model share: one
normalization (NFKC, lower case, traditional → simplified Chinese with OpenCC ``t2s``; the
other regions' phrasing with OpenCC's phrase conversions), light English stemming, index tokens
(Latin/digit words stemmed; CJK runs as overlapping character bigrams, a one-character run kept
whole; every CJK character alone for the character fields), category keys and fuzzy-match
distances. Query analysis (jieba words, synonyms, the query plan) is :mod:`search.analysis`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import opencc

_CJK = (
    "\u3040-\u30ff"  # kana
    "\u3400-\u4dbf"  # CJK ext A
    "\u4e00-\u9fff"  # CJK unified
    "\uac00-\ud7af"  # hangul
    "\uf900-\ufaff"  # compatibility ideographs
    "\U00020000-\U0002ffff"
)
TOKEN_RE = re.compile(rf"([{_CJK}]+)|([^\W_{_CJK}]+)")
_CJK_RE = re.compile(rf"^[{_CJK}]+$")


# ---------------------------------------------------------------- normalization


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=4)
def _phrase_converter(config: str) -> opencc.OpenCC:
    import opencc

    return opencc.OpenCC(config)


def regional_forms(text: str) -> list[str]:
    """The text in the other regions' phrasing, normalized, when OpenCC's phrase-level
    conversions change it: mainland → Taiwan (``s2twp``: 笔记本电脑 → 筆記型電腦, 智能手表 →
    智慧手錶) and Taiwan → mainland (``tw2sp``: 筆記型電腦 → 笔记本电脑, 滑鼠 → 鼠标)."""
    if not text or not any(is_cjk(c) for c in text):
        return []
    base = normalize(text)
    lowered = unicodedata.normalize("NFKC", text).lower()
    out: list[str] = []
    for form in (
        _converter().convert(_phrase_converter("s2twp").convert(base)),
        _phrase_converter("tw2sp").convert(_phrase_converter("s2t").convert(lowered)),
    ):
        form = normalize(form)
        if form != base and form not in out:
            out.append(form)
    return out


def normalize(text: str) -> str:
    """NFKC, lower-case, traditional → simplified Chinese."""
    if not text:
        return ""
    return _converter().convert(unicodedata.normalize("NFKC", text).lower())


def align_normalized(text: str) -> tuple[str, list[int]]:
    """`normalize` with, for each output character, the index of the input character it
    came from (for highlighting the original text)."""
    lowered = text.lower()
    if len(lowered) == len(text) and unicodedata.is_normalized("NFKC", lowered):
        converted = _converter().convert(lowered)
        if len(converted) == len(text):  # the common case: one character each
            return converted, list(range(len(text)))
    pieces = [unicodedata.normalize("NFKC", c).lower() for c in text]
    joined = "".join(pieces)
    converted = _converter().convert(joined)
    if len(converted) != len(joined):  # a phrase conversion changed the length: go char by char
        pieces = [_converter().convert(p) for p in pieces]
        converted = "".join(pieces)
    origin = [i for i, p in enumerate(pieces) for _ in p]
    return converted, origin


# ---------------------------------------------------------------- stemming


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Light English plural stemming (lower-case input). Words with digits are kept."""
    if len(word) <= 3 or not word.isalpha() or not word.isascii():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    """Offset in the *normalized* text."""
    end: int


def bigrams(run: str, offset: int) -> list[Token]:
    if len(run) == 1:
        return [Token(run, offset, offset + 1)]
    return [Token(run[i : i + 2], offset + i, offset + i + 2) for i in range(len(run) - 1)]


def token_spans(normalized: str) -> list[Token]:
    """Index tokens of already-normalized text, with their offsets."""
    out: list[Token] = []
    for m in TOKEN_RE.finditer(normalized):
        if m.group(1):
            out.extend(bigrams(m.group(1), m.start()))
        else:
            out.append(Token(stem(m.group(2)), m.start(), m.end()))
    return out


def tokens(text: str) -> list[str]:
    """Index tokens of ``text`` (normalized first); same as `token_spans` without offsets."""
    out: list[str] = []
    for m in TOKEN_RE.finditer(normalize(text)):
        run = m.group(1)
        if run:
            if len(run) == 1:
                out.append(run)
            else:
                out.extend([run[i : i + 2] for i in range(len(run) - 1)])
        else:
            out.append(stem(m.group(2)))
    return out


def char_tokens(text: str) -> list[str]:
    """Every CJK character of ``text`` (normalized first), in order, repeats kept."""
    return [c for m in TOKEN_RE.finditer(normalize(text)) if m.group(1) for c in m.group(1)]


def name_key(words: Sequence[str]) -> str:
    """One key for a word sequence: CJK words run together (``智慧型`` + ``手机`` →
    ``智慧型手机``), other words joined by ``_`` (``running_shoe``)."""
    out = ""
    prev_cjk = False
    for w in words:
        cjk = is_cjk(w)
        if out and not (cjk and prev_cjk):
            out += "_"
        out += w
        prev_cjk = cjk
    return out


def category_key(name: str) -> str:
    """The key of a category name (normalized, Latin words stemmed); '' when it has no
    searchable characters. Equals `name_key` of the query words that spell it."""
    pieces = [m.group(1) or stem(m.group(2)) for m in TOKEN_RE.finditer(normalize(name))]
    return name_key(pieces)


def is_cjk(word: str) -> bool:
    return bool(_CJK_RE.match(word))


def fuzzy_distance(token: str) -> int:
    """Allowed edits for a query token, like OpenSearch's ``fuzziness: AUTO``: none below
    3 characters, 1 up to 5, else 2; none for CJK or tokens with digits."""
    if not token.isalpha() or is_cjk(token):
        return 0
    n = len(token)
    return 0 if n < 3 else 1 if n <= 5 else 2


def edit_distance(a: str, b: str, limit: int = 2) -> int:
    """Optimal-string-alignment distance (a transposition costs 1), capped at ``limit + 1``
    (the distance the engines' fuzzy queries use)."""
    from rapidfuzz.distance import OSA

    return int(OSA.distance(a, b, score_cutoff=limit))
