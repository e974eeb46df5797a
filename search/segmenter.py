"""jieba word segmentation for query analysis: the default dictionary plus the synonym tables'
CJK words (so a listed word is never cut in two).

jieba keeps its dictionary as a Python dict of every word and every word's prefixes (about
55 MB in each process that segments). Here the same words and frequencies are a
``marisa_trie.RecordTrie`` of the words built once from jieba's dictionary file, saved in a
cache folder and memory-mapped: the workers of a server share one copy of its pages (about
2 MB), and the few words added per analyzer live in a small dict beside it. Segmentation is
jieba's own (``Tokenizer.cut``); only the frequency table it reads is replaced.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import marisa_trie

if TYPE_CHECKING:
    import jieba

log = logging.getLogger(__name__)

_JIEBA_LOCK = threading.Lock()
_TOTAL_KEY = " total"
"""The trie's entry holding the dictionary's total frequency (a dictionary word has no space)."""
FORMAT = "<Q"


class TrieFrequencies:
    """jieba's frequency table over a memory-mapped trie of the dictionary's words, with the
    words added in this process kept beside it. It answers jieba's ``FREQ.get`` (a word's
    frequency; None for anything else, which jieba reads as 0) and builds jieba's DAG of
    words (:meth:`dag`) with one trie walk per position, in place of jieba's prefix table."""

    def __init__(self, trie: marisa_trie.RecordTrie) -> None:
        self._trie = trie
        self._added: dict[str, int] = {}
        self._longest_added = 0

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self.get(word) is not None

    def get(self, word: str, default: int | None = None) -> int | None:
        got = self._added.get(word)
        if got is not None:
            return got
        found = self._trie.get(word)
        return default if found is None else int(found[0][0])

    def __getitem__(self, word: str) -> int:
        got = self.get(word)
        if got is None:
            raise KeyError(word)
        return got

    def __setitem__(self, word: str, freq: int) -> None:
        # jieba's add_word also enters each prefix with 0: only words matter here
        if freq:
            self._added[word] = freq
            self._longest_added = max(self._longest_added, len(word))

    def dag(self, sentence: str) -> dict[int, list[int]]:
        """jieba's ``get_DAG``: for each position, the end positions of the dictionary words
        starting there (the position itself when none does)."""
        prefixes = self._trie.prefixes
        added, longest = self._added, self._longest_added
        n = len(sentence)
        out: dict[int, list[int]] = {}
        for k in range(n):
            # the trie gives a position's words shortest first: their ends ascend
            ends = [k + len(w) - 1 for w in prefixes(sentence[k:])]
            if longest:
                more = [k + j - 1 for j in range(1, min(longest, n - k) + 1)
                        if sentence[k : k + j] in added]
                if more:
                    ends = sorted(set(ends).union(more))
            out[k] = ends or [k]
        return out


def cache_dir() -> Path:
    """Where the dictionary trie is kept: ``$XDG_CACHE_HOME/shoprank`` (``~/.cache/shoprank``),
    else a folder in the temporary directory when the home is not writable."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "shoprank"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            return folder
    except OSError:
        pass
    folder = Path(tempfile.gettempdir()) / f"shoprank-cache-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _trie_path(dict_file: Path) -> Path:
    st = dict_file.stat()
    key = hashlib.sha256(f"{dict_file}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / f"jieba-{key}.marisa"


def _build(dict_file: Path, path: Path) -> None:
    """Read jieba's dictionary file (its own parser) and save the trie at ``path`` atomically:
    processes starting together may each build it; the last rename wins, all are equal."""
    import jieba

    with dict_file.open("rb") as f:
        freq, total = jieba.Tokenizer.gen_pfdict(f)
    items = [(w, (int(n),)) for w, n in freq.items() if n > 0]  # words, not bare prefixes
    items.append((_TOTAL_KEY, (int(total),)))
    trie = marisa_trie.RecordTrie(FORMAT, items)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    trie.save(str(tmp))
    os.replace(tmp, path)
    log.debug("jieba dictionary trie: %d entries saved to %s", len(items), path)


@lru_cache(maxsize=1)
def _frequency_trie() -> marisa_trie.RecordTrie:
    import jieba

    with jieba.get_dict_file() as f:
        dict_file = Path(f.name)
    path = _trie_path(dict_file)
    if not path.exists():
        _build(dict_file, path)
    trie = marisa_trie.RecordTrie(FORMAT)
    trie.mmap(str(path))
    return trie


def _tokenizer() -> jieba.Tokenizer:
    """A jieba tokenizer over the shared frequency trie (nothing of the dictionary copied)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    trie = _frequency_trie()
    tk = jieba.Tokenizer()
    table = TrieFrequencies(trie)
    tk.FREQ = table
    tk.total = int(trie[_TOTAL_KEY][0][0])
    tk.initialized = True
    tk.get_DAG = table.dag  # jieba's reads its prefix table, which the trie replaces
    return tk


@lru_cache(maxsize=1)
def base_segmenter() -> jieba.Tokenizer:
    with _JIEBA_LOCK:
        return _tokenizer()


@lru_cache(maxsize=8)
def segmenter_with(extra_words: frozenset[str]) -> jieba.Tokenizer:
    """jieba with the default dictionary plus ``extra_words`` (one per word set and process;
    the dictionary itself is the shared trie)."""
    if not extra_words:
        return base_segmenter()
    with _JIEBA_LOCK:
        tk = _tokenizer()
        for w in sorted(extra_words):
            tk.add_word(w, freq=100_000)
        return tk
