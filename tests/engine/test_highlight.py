"""Highlighting spans of the rule editor: any text, typed half-way or not, gives ordered,
non-overlapping spans inside it, and a rule's tokens get their kinds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tagloop.engine.drafts import highlight
from tests.rules.strategies import expressions


def kinds(text: str) -> list[tuple[str, str]]:
    return [(s["kind"], text[s["start"] : s["end"]]) for s in highlight(text)]


def test_kinds_of_a_rule() -> None:
    text = "has_tag('VIP') and not vip == true  # 贵宾\nor spend between 1 and 2"
    assert kinds(text) == [
        ("function", "has_tag"),
        ("op", "("),
        ("string", "'VIP'"),
        ("op", ")"),
        ("keyword", "and"),
        ("keyword", "not"),
        ("name", "vip"),
        ("op", "=="),
        ("constant", "true"),
        ("comment", "# 贵宾"),
        ("keyword", "or"),
        ("name", "spend"),
        ("keyword", "between"),
        ("number", "1"),
        ("keyword", "and"),
        ("number", "2"),
    ]


def test_what_does_not_tokenize_is_one_error_span() -> None:
    assert kinds("spend > 'unclosed") == [("name", "spend"), ("op", ">"), ("error", "'unclosed")]
    assert kinds("a ~ b") == [("name", "a"), ("error", "~ b")]


@settings(max_examples=300, deadline=None)
@given(st.one_of(expressions(), st.text(max_size=40)), st.integers(0, 60))
def test_spans_are_ordered_and_inside_the_text(rule: str, cut: int) -> None:
    text = rule[:cut] if cut < len(rule) else rule
    spans = highlight(text)
    position = 0
    for span in spans:
        assert position <= span["start"] < span["end"] <= len(text)
        position = span["end"]
