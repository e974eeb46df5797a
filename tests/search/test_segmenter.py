"""The segmenter over the shared dictionary trie cuts exactly as jieba over its own dictionary,
and keeps the dictionary out of each process's heap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jieba
import pytest

from search.analysis import load_synonyms
from search.segmenter import TrieFrequencies, segmenter_with
from search.shopper_queries import QUERIES
from tests.search.catalog import items

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "我想买一双适合冬天徒步的保暖登山鞋", "粉紅色連身裙大尺碼500元以下", "智能手表 智慧手錶",
    "手提電腦 筆記型電腦 笔记本电脑", "蘋果iPhone15手機殼透明防摔", "无线蓝牙耳机降噪",
    "中華人民共和國", "女装连衣裙夏季新款碎花", "Nike跑步鞋男款黑色", "",
]


def corpus() -> list[str]:
    return TEXTS + [q[1] for q in QUERIES] + [i.title for i in items()]


@pytest.fixture(scope="module")
def reference() -> jieba.Tokenizer:
    jieba.setLogLevel(40)
    tk = jieba.Tokenizer()
    tk.initialize()
    return tk


@pytest.mark.parametrize("hmm", [False, True])
def test_cuts_as_jieba_does(reference: jieba.Tokenizer, hmm: bool) -> None:
    ours = segmenter_with(frozenset())
    assert isinstance(ours.FREQ, TrieFrequencies)
    for text in corpus():
        assert list(ours.cut(text, HMM=hmm)) == list(reference.cut(text, HMM=hmm)), text


def test_added_words_cut_as_jieba_with_the_same_words(reference: jieba.Tokenizer) -> None:
    words = frozenset(load_synonyms(None).cjk_words()) | {"碎花連衣", "防摔殼", "保暖登山"}
    ours = segmenter_with(words)
    ref = jieba.Tokenizer()
    ref.initialize()
    for w in sorted(words):
        ref.add_word(w, freq=100_000)
    differs = [t for t in corpus() if list(ours.cut(t, HMM=False)) != list(ref.cut(t, HMM=False))]
    assert differs == []
    assert "保暖登山" in list(ours.cut("保暖登山鞋", HMM=False))
    # the base segmenter is not changed by another's added words
    assert "保暖登山" not in list(segmenter_with(frozenset()).cut("保暖登山鞋", HMM=False))


def test_the_dictionary_is_mapped_not_copied(tmp_path: Path) -> None:
    """A fresh process segments with the trie mapped from the cache folder; its heap grows by
    a few MB, where jieba's own dictionary takes about 50 MB."""
    child = """
import os, sys
from search.segmenter import segmenter_with
def heap():
    total, anon = 0, False
    for line in open("/proc/self/smaps"):
        head = line.split()
        if len(head) >= 5 and "-" in head[0] and ":" in head[3]:
            anon = len(head) < 6 or head[5].startswith("[")
        elif anon and line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(head[1])
    return total / 1024
import jieba  # imported before the measure: only the dictionary counts
before = heap()
words = list(segmenter_with(frozenset({"碎花連衣"})).cut("紅色碎花連衣裙夏季", HMM=False))
print(round(heap() - before, 1), "|".join(words))
maps = [l for l in open("/proc/self/maps") if ".marisa" in l]
print(len(maps))
"""
    env = {"PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin",
           "HOME": str(tmp_path)}
    for _ in range(2):  # the first run builds the trie file, the second only maps it
        r = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    grew, words = r.stdout.split()[:2]
    assert words.split("|")[-3:] == ["碎花連衣", "裙", "夏季"]
    assert float(grew) < 15, r.stdout
    assert int(r.stdout.split()[2]) >= 1  # the trie file is mapped
    assert len(list((tmp_path / "shoprank").glob("jieba-*.marisa"))) == 1
