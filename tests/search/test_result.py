"""Search hits: highlighted on first use, compared by content."""

from __future__ import annotations

from search.result import SearchHit


def test_hit_is_highlighted_once_and_only_when_asked() -> None:
    calls: list[str] = []

    def mark(title: str) -> str:
        calls.append(title)
        return f"<em>{title}</em>"

    hit = SearchHit.build(mark, item_id="a", score=1.0, title="Red Dress")
    assert calls == []  # a re-ranking caller that never shows this hit pays nothing
    assert hit.highlighted_title == "<em>Red Dress</em>"
    assert hit.highlighted_title == "<em>Red Dress</em>"
    assert calls == ["Red Dress"]
    assert hit.model_dump()["highlighted_title"] == "<em>Red Dress</em>"


def test_hits_compare_by_content() -> None:
    a = SearchHit.build(lambda t: f"<em>{t}</em>", item_id="a", score=1.0, title="x & y")
    b = SearchHit.build(lambda t: f"<em>{t}</em>", item_id="a", score=1.0, title="x & y")
    assert a == b and hash(a) == hash(b)
    plain = SearchHit.build(None, item_id="a", score=1.0, title="x & y")
    assert plain.highlighted_title == "x &amp; y" and plain != a
