"""Highlighting: which parts of a title match a query plan, marked in HTML. One
implementation for every backend, so both return the same ``highlighted_title``."""

from __future__ import annotations

import html

from data.text import TOKEN_RE, align_normalized, edit_distance, is_cjk, stem
from search.plan import QueryPlan


class Highlighter:
    """Marks the parts of titles that match a plan; remembers token decisions, so build one
    per request and use it for every hit."""

    def __init__(self, plan: QueryPlan) -> None:
        self.plan = plan
        self._wanted = plan.all_tokens()
        self._chars = plan.all_chars()
        self._fuzzy = plan.fuzzy_tokens()
        self._seen: dict[str, bool] = {}

    def _hit(self, tok: str) -> bool:
        got = self._seen.get(tok)
        if got is None:
            got = tok in self._wanted or (
                tok.isalpha()
                and not is_cjk(tok)
                and any(
                    abs(len(tok) - len(q)) <= d and edit_distance(tok, q, d) <= d
                    for q, d in self._fuzzy.items()
                )
            )
            self._seen[tok] = got
        return got

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character ranges of ``text`` (original) that match the plan's tokens, merged."""
        if self.plan.is_empty or not text:
            return []
        normalized, origin = align_normalized(text)
        found: list[tuple[int, int]] = []
        wanted, chars = self._wanted, self._chars
        for m in TOKEN_RE.finditer(normalized):  # in text order
            run, base = m.group(1), m.start()
            if not run:
                if self._hit(stem(m.group(2))):
                    found.append((origin[base], origin[m.end() - 1] + 1))
                continue
            if len(run) == 1:
                if run in wanted or run in chars:
                    found.append((origin[base], origin[base] + 1))
                continue
            for i in range(len(run)):
                if run[i : i + 2] in wanted and i + 1 < len(run):
                    found.append((origin[base + i], origin[base + i + 1] + 1))
                elif run[i] in chars:
                    found.append((origin[base + i], origin[base + i] + 1))
        merged: list[tuple[int, int]] = []
        for s, e in found:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        return merged

    def html(self, text: str, tag: str = "em") -> str:
        """``text`` HTML-escaped with matched parts wrapped in ``<tag>…</tag>``."""
        out: list[str] = []
        pos = 0
        for s, e in self.spans(text):
            out.append(html.escape(text[pos:s]))
            out.append(f"<{tag}>{html.escape(text[s:e])}</{tag}>")
            pos = e
        out.append(html.escape(text[pos:]))
        return "".join(out)


def matched_spans(text: str, plan: QueryPlan) -> list[tuple[int, int]]:
    """Character ranges of ``text`` (original) that match the plan's tokens, merged."""
    return Highlighter(plan).spans(text)


def highlight(text: str, plan: QueryPlan, tag: str = "em") -> str:
    """``text`` HTML-escaped with matched parts wrapped in ``<tag>…</tag>``."""
    return Highlighter(plan).html(text, tag)
