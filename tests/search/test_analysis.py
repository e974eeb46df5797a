"""The shared text analysis: normalization, tokens, query plans, synonyms, highlighting."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.text import category_key, char_tokens, edit_distance, normalize, stem, tokens
from search.analysis import SYNONYM_BOOST, Analyzer, load_synonyms, parse_synonyms
from search.errors import SynonymsFileError
from search.highlight import highlight


def test_normalize_script_width_case() -> None:
    assert normalize("連衣裙 紅色") == "连衣裙 红色"
    assert normalize("ＡＢＣ１２３") == "abc123"
    assert normalize("Nike　運動鞋") == "nike 运动鞋"  # ideographic space → space


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [("dresses", "dress"), ("shoes", "shoe"), ("berries", "berry"), ("boxes", "box"),
     ("watches", "watch"), ("dress", "dress"), ("bus", "bus"), ("s24", "s24"), ("tee", "tee")],
)
def test_light_stemming(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_tokens_bigrams_and_words() -> None:
    assert tokens("紅色連衣裙 Red Dresses") == ["红色", "色连", "连衣", "衣裙", "red", "dress"]
    assert tokens("裙") == ["裙"]
    assert tokens("iPhone15！") == ["iphone15"]


def test_query_words_cut_chinese_runs() -> None:
    a = Analyzer()
    plan = a.plan("红色连衣裙")
    assert [c.source for c in plan.clauses] == ["红色", "连衣裙"]
    assert plan.clauses[1].alternatives[0].tokens == ("连衣", "衣裙")

def test_lone_character_stays_one_character() -> None:
    # A shopper typing 裙 means any skirt or dress: the character alone, matched anywhere,
    # not glued to a neighbour (色裙 would only find titles where 色 precedes 裙).
    a = Analyzer()
    for text, lone in (("红色裙", "裙"), ("防滑鞋", "鞋"), ("裙", "裙"), ("紅色 裙", "裙")):
        clauses = a.plan(text).clauses
        assert clauses[-1].source == lone, text
        alt = clauses[-1].alternatives[0]
        assert alt.tokens == (lone,) and alt.chars, text
    assert not any(x.chars for c in a.plan("红色连衣裙").clauses for x in c.alternatives)
    # consecutive lone characters (an unknown name) still make one word
    assert [c.source for c in a.plan("欧莱雅").clauses] == ["欧莱雅"]


def test_function_characters_are_dropped() -> None:
    a = Analyzer()
    assert [c.source for c in a.plan("红色的裙子").clauses] == ["红色", "裙子"]
    assert [c.source for c in a.plan("的").clauses] == ["的"]  # nothing else: kept


def test_char_tokens() -> None:
    assert char_tokens("紅色 Red 連衣裙") == ["红", "色", "连", "衣", "裙"]
    assert char_tokens("Red Dress") == []


def test_category_names_in_plan() -> None:
    a = Analyzer(parse_synonyms(["手機, phone"]))
    assert category_key("智慧型手機") == "智慧型手机"
    assert category_key("Running Shoes") == "running_shoe"
    assert category_key("T恤") == "t_恤"
    names = dict(a.plan("黃色 手機").names)
    assert names["手机"] == 1.0 and names["phone"] == SYNONYM_BOOST
    assert names["黄色手机"] == 1.0  # runs of words too
    assert "手机" in dict(a.plan("yellow phone").names)  # a synonym names the category
    # the keys of the words that spell a category equal the category's key
    assert category_key("Running Shoes") in dict(a.plan("running shoes").names)
    assert category_key("智慧型手機") in dict(a.plan("智慧型 手機").names)
    assert category_key("T恤") in dict(a.plan("t恤").names)


def test_minimum_should_match() -> None:
    a = Analyzer()
    assert a.plan("red dress").minimum_should_match == 2
    assert a.plan("a b c d e f g h").minimum_should_match == 6


def test_synonyms_equivalence_and_one_way() -> None:
    syn = parse_synonyms(["手機, mobile phone  # comment", "", "tee => t-shirt"])
    a = Analyzer(syn, regional=False)  # only this file's rules
    alts = {x.tokens: x.boost for x in a.plan("手機").clauses[0].alternatives}
    assert alts == {("手机",): 1.0, ("mobile", "phone"): SYNONYM_BOOST}
    alts2 = {x.tokens for x in a.plan("Mobile Phones").clauses[0].alternatives}
    assert alts2 == {("手机",), ("mobile", "phone")}
    assert {x.tokens for x in a.plan("tee").clauses[0].alternatives} == {("tee",), ("t", "shirt")}
    assert len(a.plan("t-shirt").clauses) == 2  # one-way: no expansion back


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("only-one", "at least two"),
        ("a => b => c", "one '=>'"),
        ("=> b", "both sides"),
        ("a, ！！", "no searchable"),
    ],
)
def test_bad_synonym_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(SynonymsFileError, match=rf"line 2: .*{message}"):
        parse_synonyms(["a, b", line], "syn.txt")


def test_synonyms_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SynonymsFileError, match="cannot read"):
        load_synonyms(tmp_path / "missing.txt")
    p = tmp_path / "bad.txt"
    p.write_bytes("手機, 手机".encode("big5"))
    with pytest.raises(SynonymsFileError, match="UTF-8"):
        load_synonyms(p)
    p.write_text("手機, phone\n", encoding="utf-8")
    assert ("phone",) in load_synonyms(p).table[("手机",)]


def test_default_synonyms_file_parses() -> None:
    syn = load_synonyms(None)
    assert ("mobile", "phone") in syn.table[("手机",)]


def test_highlight() -> None:
    a = Analyzer(parse_synonyms(["連衣裙, dress"]))
    assert highlight("紅色連衣裙 <b>", a.plan("连衣裙")) == "紅色<em>連衣裙</em> &lt;b&gt;"
    assert highlight("Red Dreses", a.plan("red dresses")) == "<em>Red</em> <em>Dreses</em>"
    assert (
        highlight("Red Dreses", a.plan("red dresses", typo_tolerance=False))
        == "<em>Red</em> Dreses"
    )
    assert highlight("ＲＥＤ", a.plan("red")) == "<em>ＲＥＤ</em>"
    assert highlight("紅色連衣裙", a.plan("裙")) == "紅色連衣<em>裙</em>"
    assert highlight("紅色連衣裙", a.plan("红色裙")) == "<em>紅色</em>連衣<em>裙</em>"


def test_edit_distance() -> None:
    assert edit_distance("dress", "dres") == 1
    assert edit_distance("headphnoes", "headphones") == 1
    assert edit_distance("abc", "xyz", limit=2) == 3
