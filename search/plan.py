"""The query plan: what a query asks for, as the analyzer (`search.analysis.Analyzer.plan`)
made it and as relaxation (`search.relax`) loosens it. Backends turn a plan into their query
language; nothing here depends on one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Alternative:
    tokens: tuple[str, ...]
    """One token → a term; several → an exact phrase."""
    fuzzy_distance: int = 0
    """Edits allowed when typo tolerance is on (0 for phrases, CJK, short words and synonym
    expansions: typos are in what the shopper typed)."""
    boost: float = 1.0
    """1.0 for what the shopper typed, `SYNONYM_BOOST` for a synonym expansion."""
    chars: bool = False
    """One CJK character: a term in the character fields (`search.backend.CHAR_FIELDS`),
    which hold every CJK character alone, instead of the text fields."""


@dataclass(frozen=True)
class Clause:
    source: str
    """The query word(s) this clause came from (normalized)."""
    alternatives: tuple[Alternative, ...]


@dataclass(frozen=True)
class QueryPlan:
    text: str
    clauses: tuple[Clause, ...]
    typo_tolerance: bool = True
    names: tuple[tuple[str, float], ...] = ()
    """(category key, boost): runs of query words, or one word's synonyms, that spell a
    whole category name (`category_key`); boost 1.0 typed, `SYNONYM_BOOST` synonym."""

    any_clause: bool = False
    """Match documents with any one clause (the last relaxation step) instead of the
    default share."""

    @property
    def minimum_should_match(self) -> int:
        """All clauses up to 3; above that, 3 in 4 (rounded up); 1 with ``any_clause``."""
        n = len(self.clauses)
        if self.any_clause:
            return min(n, 1)
        return n if n <= 3 else -(-3 * n // 4)

    @property
    def is_empty(self) -> bool:
        return not self.clauses

    def all_tokens(self) -> set[str]:
        return {t for c in self.clauses for a in c.alternatives if not a.chars for t in a.tokens}

    def all_chars(self) -> set[str]:
        return {a.tokens[0] for c in self.clauses for a in c.alternatives if a.chars}

    def fuzzy_tokens(self) -> dict[str, int]:
        if not self.typo_tolerance:
            return {}
        return {
            a.tokens[0]: a.fuzzy_distance
            for c in self.clauses
            for a in c.alternatives
            if a.fuzzy_distance > 0
        }


Word = str
"""A query word: a stemmed Latin word or a CJK word (normalized)."""
