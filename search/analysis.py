"""The one query analysis used by every search backend and by merchandising rules.

Text primitives — `normalize` (NFKC, lower case, traditional → simplified, so 連衣裙 and 连衣裙
are the same text), index `tokens` (CJK bigrams, stemmed Latin words), `char_tokens`,
`category_key` — are in :mod:`data.text`; this module turns a query into a plan.

* `Analyzer.plan` (querying): CJK runs are cut into words with jieba (dictionary only, no
  HMM); each word becomes the phrase of its bigrams, so a word matches wherever its
  characters appear together (``红色连衣裙`` → ``红色`` + ``连衣裙``, matching "連衣裙 紅色").
  A character jieba leaves alone between words (``红色裙`` → ``红色`` + ``裙``) stays one
  character and matches that character anywhere in titles and meta (裙 finds 連衣裙 and
  半身裙), except a few function characters (`STOP_CHARS`: ``红色的裙子``), which are dropped.
  Synonyms are expanded here, in Python, so both backends behave the same.
* Category names: every run of query words (and every synonym of one word) that spells a
  whole category name (``手机``, ``智慧型手机``, ``running shoe``) is listed in
  `QueryPlan.names`; backends add a fixed score to items in that category, so a word that
  names what the item *is* outranks the same word in a title that names something else
  ("yellow phone" → phones before "Yellow Phone Case").

Synonyms file (UTF-8, merchandisers edit it; ``#`` starts a comment)::

    手機, 手机, mobile phone, cellphone     # equivalent: each finds all
    tee => t-shirt                          # one-way: "tee" also finds "t-shirt", not back

A one-way rule keeps the original term (it expands, it does not replace).
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from data.text import (
    TOKEN_RE,
    bigrams,
    fuzzy_distance,
    is_cjk,
    name_key,
    normalize,
    regional_forms,
    stem,
)
from search.errors import SynonymsFileError
from search.plan import Alternative, Clause, QueryPlan, Word
from search.segmenter import segmenter_with

if TYPE_CHECKING:
    import jieba

log = logging.getLogger(__name__)

DEFAULT_SYNONYMS = "synonyms.txt"
DEFAULT_VARIANTS = "variants.txt"
"""Regional shopping vocabulary shipped with the package (Taiwan / Hong Kong / mainland
words, colour and size families), applied with any synonyms file."""
PLAN_CACHE_SIZE = 4096
SYNONYM_BOOST = 0.8
"""Weight of a synonym's matches relative to the typed words (exact wording ranks first)."""
STOP_CHARS = frozenset("的了之与及和或")
"""Function characters dropped when jieba leaves them alone in a query (``红色的裙子``),
unless nothing else is left."""
MAX_NAME_WORDS = 4
"""Longest run of query words compared with category names."""

@dataclass(frozen=True)
class Synonyms:
    """Expansion table: a word sequence → the word sequences it also finds (itself included)."""

    table: dict[tuple[Word, ...], tuple[tuple[Word, ...], ...]] = field(default_factory=dict)

    @property
    def max_len(self) -> int:
        return max((len(k) for k in self.table), default=0)

    def merged(self, other: Synonyms) -> Synonyms:
        """Both tables: a key of both finds what either lists (this table's order first)."""
        table = dict(self.table)
        for k, vs in other.table.items():
            mine = table.get(k, (k,))
            table[k] = mine + tuple(v for v in vs if v not in mine)
        return Synonyms(table)

    def cjk_words(self) -> set[str]:
        return {w for k in self.table for w in k if is_cjk(w)} | {
            w for vs in self.table.values() for v in vs for w in v if is_cjk(w)
        }


def _add_name(names: dict[str, float], key: str, boost: float) -> None:
    if key and boost > names.get(key, 0.0):
        names[key] = boost


def _word_tokens(word: Word) -> list[str]:
    return [t.text for t in bigrams(word, 0)] if is_cjk(word) else [word]


class Analyzer:
    """Query analysis with a synonym table. Thread-safe; build one per backend."""

    def __init__(self, synonyms: Synonyms | None = None, *, regional: bool = True) -> None:
        """``regional``: also apply the shipped regional variants (`DEFAULT_VARIANTS`) and
        OpenCC's phrase conversions (`regional_forms`) to queries."""
        self.regional = regional
        self.synonyms = synonyms or Synonyms()
        if regional:
            self.synonyms = self.synonyms.merged(regional_variants())
        self._jieba: jieba.Tokenizer | None = None
        self._lock = threading.Lock()
        self._plans: OrderedDict[tuple[str, bool], QueryPlan] = OrderedDict()
        self._plans_lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path | None) -> Analyzer:
        """Synonyms from ``path``, or the package's default file when None."""
        return cls(load_synonyms(path))

    # -- words

    def _segmenter(self) -> jieba.Tokenizer:
        if self._jieba is None:
            with self._lock:
                if self._jieba is None:
                    self._jieba = segmenter_with(frozenset(self.synonyms.cjk_words()))
        return self._jieba

    def warm_up(self) -> None:
        """Load the Chinese dictionary now (about a second) rather than on the first query."""
        self._segmenter()

    def words(self, normalized: str) -> list[Word]:
        """Query words of normalized text. Consecutive characters jieba leaves alone are
        joined (an unknown name: ``欧莱雅``); one alone between words stays one character
        (``红色裙`` → ``红色``, ``裙``), and is dropped when it is in `STOP_CHARS`, unless
        the query has nothing else."""
        out: list[Word] = []
        dropped: list[Word] = []
        for m in TOKEN_RE.finditer(normalized):
            if m.group(2):
                out.append(stem(m.group(2)))
                continue
            run = m.group(1)
            cut = [run] if len(run) == 1 else self._segmenter().cut(run, HMM=False)
            pending = ""
            for w in cut:
                if len(w) == 1 and w not in STOP_CHARS:
                    pending += w
                    continue
                if pending:
                    out.append(pending)
                    pending = ""
                if len(w) == 1:
                    dropped.append(w)  # a function character separates words
                else:
                    out.append(w)
            if pending:
                out.append(pending)
        return out or dropped

    def plan(self, text: str, *, typo_tolerance: bool = True) -> QueryPlan:
        """The query plan for ``text`` (see `search.backend` for how backends run it).
        Plans are cached (`PLAN_CACHE_SIZE` per analyzer): they are immutable."""
        key = (text, typo_tolerance)
        with self._plans_lock:
            got = self._plans.get(key)
            if got is not None:
                self._plans.move_to_end(key)
                return got
        plan = self._plan(text, typo_tolerance=typo_tolerance)
        with self._plans_lock:
            self._plans[key] = plan
            while len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    def _regional_table(
        self, text: str, words: list[Word]
    ) -> dict[tuple[Word, ...], tuple[tuple[Word, ...], ...]]:
        """Per-query variants from `regional_forms`: each run of query words that a phrase
        conversion rewrote → itself and the rewritten words."""
        if not self.regional:
            return {}
        extra: dict[tuple[Word, ...], tuple[tuple[Word, ...], ...]] = {}
        for form in regional_forms(text):
            other = self.words(form)
            ops = difflib.SequenceMatcher(a=words, b=other, autojunk=False).get_opcodes()
            for op, i1, i2, j1, j2 in ops:
                if op != "replace":
                    continue
                k, v = tuple(words[i1:i2]), tuple(other[j1:j2])
                have = extra.get(k) or self.synonyms.table.get(k) or (k,)
                if v not in have:
                    extra[k] = (*have, v)
        return extra

    def _plan(self, text: str, *, typo_tolerance: bool = True) -> QueryPlan:
        normalized = normalize(text)
        words = self.words(normalized)
        extra = self._regional_table(text, words)
        clauses: list[Clause] = []
        spans: list[tuple[Word, ...]] = []
        names: dict[str, float] = {}
        i = 0
        max_len = max(self.synonyms.max_len, max((len(k) for k in extra), default=0))
        while i < len(words):
            match: tuple[tuple[Word, ...], int] | None = None
            for k in range(min(max_len, len(words) - i), 0, -1):
                key = tuple(words[i : i + k])
                if key in extra or key in self.synonyms.table:
                    match = (key, k)
                    break
            if match is None:
                variants: tuple[tuple[Word, ...], ...] = ((words[i],),)
                step = 1
            else:
                variants = extra.get(match[0]) or self.synonyms.table[match[0]]
                step = match[1]
            alts: list[Alternative] = []
            seen: set[tuple[str, ...]] = set()
            typed = tuple(words[i : i + step])
            for v in variants:
                toks = tuple(t for w in v for t in _word_tokens(w))
                if toks and toks not in seen:
                    seen.add(toks)
                    boost = 1.0 if v == typed else SYNONYM_BOOST
                    # typos are in what the shopper typed, not in the synonyms we add
                    fuzzy = len(toks) == 1 and typo_tolerance and v == typed
                    fd = fuzzy_distance(toks[0]) if fuzzy else 0
                    chars = len(v) == 1 and len(v[0]) == 1 and is_cjk(v[0])
                    alts.append(Alternative(toks, fd, boost, chars))
                    _add_name(names, name_key(v), boost)
            if alts:
                clauses.append(Clause(" ".join(words[i : i + step]), tuple(alts)))
                spans.append(typed)
            i += step
        for a in range(len(spans)):  # runs of typed words across clauses
            run: tuple[Word, ...] = spans[a]
            for b in range(a + 1, len(spans)):
                run += spans[b]
                if len(run) > MAX_NAME_WORDS:
                    break
                _add_name(names, name_key(run), 1.0)
        return QueryPlan(normalized, tuple(clauses), typo_tolerance, tuple(names.items()))


# ---------------------------------------------------------------- synonyms


def _parse_terms(part: str, analyzer: Analyzer, where: str) -> list[tuple[Word, ...]]:
    terms = []
    for raw in part.split(","):
        raw = raw.strip()
        if not raw:
            continue
        norm = normalize(raw)
        # a Chinese term is one word (the query segmenter learns it: `Synonyms.cjk_words`),
        # so it is found whole in queries and matched as the phrase of its bigrams
        words = (norm,) if is_cjk(norm) else tuple(analyzer.words(norm))
        if not words:
            raise SynonymsFileError(f"{where}: {raw!r} has no searchable characters; remove it")
        terms.append(words)
    return terms


def parse_synonyms(lines: Iterable[str], source: str = "synonyms") -> Synonyms:
    """Parse synonym rules (see the module docstring). Raises `SynonymsFileError` naming the
    line of a bad rule."""
    plain = Analyzer(regional=False)  # segment terms without synonyms
    groups: list[tuple[list[tuple[Word, ...]], list[tuple[Word, ...]]]] = []
    for n, line in enumerate(lines, start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source} line {n}"
        if "=>" in line:
            left, _, right = line.partition("=>")
            if "=>" in right:
                raise SynonymsFileError(f"{where}: use one '=>' per rule")
            lhs, rhs = _parse_terms(left, plain, where), _parse_terms(right, plain, where)
            if not lhs or not rhs:
                raise SynonymsFileError(f"{where}: write 'a, b => c' with terms on both sides")
            groups.append((lhs, rhs))
        else:
            terms = _parse_terms(line, plain, where)
            if len(terms) < 2:
                raise SynonymsFileError(f"{where}: an equivalence needs at least two terms, e.g. 'a, b'")
            groups.append((terms, terms))
    table: dict[tuple[Word, ...], list[tuple[Word, ...]]] = {}
    for lhs, rhs in groups:
        for key in lhs:
            found = table.setdefault(key, [key])
            for v in rhs:
                if v not in found:
                    found.append(v)
    return Synonyms({k: tuple(v) for k, v in table.items()})


def load_synonyms(path: Path | None) -> Synonyms:
    """Read a synonyms file; None → the default file shipped with the package."""
    if path is None:
        text = resources.files("search").joinpath(DEFAULT_SYNONYMS).read_text(encoding="utf-8")
        return parse_synonyms(text.splitlines(), DEFAULT_SYNONYMS)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SynonymsFileError(
            f"cannot read synonyms file {path}: {exc.strerror}; fix SHOPRANK_SYNONYMS_FILE"
        ) from exc
    except UnicodeDecodeError as exc:
        raise SynonymsFileError(f"synonyms file {path} is not UTF-8; save it as UTF-8") from exc
    return parse_synonyms(text.splitlines(), str(path))


@lru_cache(maxsize=1)
def regional_variants() -> Synonyms:
    """The shipped regional variants list (`DEFAULT_VARIANTS`)."""
    text = resources.files("search").joinpath(DEFAULT_VARIANTS).read_text(encoding="utf-8")
    return parse_synonyms(text.splitlines(), DEFAULT_VARIANTS)


@lru_cache(maxsize=1)
def default_analyzer() -> Analyzer:
    return Analyzer.from_file(None)


def phrase_tokens(words: Sequence[Word]) -> tuple[str, ...]:
    """Index tokens of a word sequence (helper for rules and tests)."""
    return tuple(t for w in words for t in _word_tokens(w))
