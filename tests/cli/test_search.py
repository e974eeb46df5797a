"""The search commands through the real `shoprank` CLI (typer), on the embedded backend."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cli.search import parse_filter
from search.errors import SearchRequestError
from tests.search import catalog


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHOPRANK_HOME", str(tmp_path))
    monkeypatch.delenv("SHOPRANK_OPENSEARCH_URL", raising=False)
    monkeypatch.setenv("SHOPRANK_SEARCH_BACKEND", "embedded")
    (tmp_path / "data").mkdir()
    lines = [i.model_dump_json() for i in catalog.items()]
    lines.insert(3, '{"item_id": "bad", "title": "", "price": -1}')
    (tmp_path / "data" / "items.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


@pytest.fixture()
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """Run ``shoprank ARGS`` through its real entry point; (exit code, stdout + stderr)."""
    from cli.main import main

    def _run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out + out.err

    return _run


def test_index_then_search(home: Path, run: Callable[..., tuple[int, str]]) -> None:
    code, out = run("index")
    assert code == 0, out
    assert "items indexed" in out and str(len(catalog.items())) in out
    assert "rows rejected" in out
    code, out = run(
        "search", "連衣裙 紅色", "--facet", "brand", "--filter", "price=..300", "--json"
    )
    assert code == 0, out
    result = json.loads(out)
    assert {h["item_id"] for h in result["hits"]} == {"d1", "d2"}
    assert {v["value"] for v in result["facets"]["brand"]} == {"優衣庫", "Zara"}
    code, out = run("search", "red dress", "-f", "price")
    assert code == 0 and "hits for" in out and "facet price" in out
    code, out = run("suggest", "ni")
    assert code == 0 and "Nike" in out


def test_bad_input_is_one_line_exit_2(home: Path, run: Callable[..., tuple[int, str]]) -> None:
    run("index")
    code, out = run("search", "x", "--size", "500")
    assert code == 2 and "size" in out
    code, out = run("search", "x", "--facet", "colour")
    assert code == 2 and "colour" in out
    code, out = run("index", "--items", str(home / "nope.jsonl"))
    assert code == 2 and "--items" in out


def test_search_without_index_says_how_to_fix(
    home: Path, run: Callable[..., tuple[int, str]]
) -> None:
    code, out = run("search", "red")
    assert code == 2 and "shoprank index" in out
    code, out = run("search", "x", "--filter", "colour=red")
    assert code == 2 and "colour" in out


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("brand=Nike,Adidas", {"type": "terms", "field": "brand", "values": ["Nike", "Adidas"]}),
        ("price=100..500", {"type": "range", "field": "price", "gte": 100.0, "lte": 500.0}),
        ("price=..99", {"type": "range", "field": "price", "lte": 99.0}),
        ("in_stock=true", {"type": "bool", "field": "in_stock", "value": True}),
    ],
)
def test_parse_filter(spec: str, want: dict[str, object]) -> None:
    assert parse_filter(spec) == want


@pytest.mark.parametrize("spec", ["colour=red", "price=cheap", "in_stock=maybe", "brand"])
def test_parse_filter_errors(spec: str) -> None:
    with pytest.raises(SearchRequestError):
        parse_filter(spec)
