"""jieba word segmentation for query analysis: the default dictionary, loaded once per
process, plus the synonym tables' CJK words (so a listed word is never cut in two)."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jieba

_JIEBA_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def base_segmenter() -> jieba.Tokenizer:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tk = jieba.Tokenizer()
    tk.initialize()
    return tk


@lru_cache(maxsize=8)
def segmenter_with(extra_words: frozenset[str]) -> jieba.Tokenizer:
    """jieba with the default dictionary plus ``extra_words`` (loaded once per process). A
    tokenizer of its own, loaded from jieba's dictionary cache: copying the base tokenizer's
    dictionary kept two of them (about 26 MB each) in every worker."""
    with _JIEBA_LOCK:
        if not extra_words:
            return base_segmenter()
        import jieba

        jieba.setLogLevel(logging.WARNING)
        tk = jieba.Tokenizer()
        tk.initialize()
        for w in sorted(extra_words):
            tk.add_word(w, freq=100_000)
        return tk
