"""The rule parser, tokenizer and printer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagloop.rules import RuleError, parse
from tagloop.rules import tree as t
from tagloop.rules.printer import to_text
from tests.rules.strategies import expressions


def validate_identity(text: str, expected: str | None = None) -> None:
    """``text`` parses, and prints back as ``expected`` (default: itself)."""
    assert to_text(parse(text)) == (expected or text)


def error_at(text: str) -> tuple[str, int]:
    with pytest.raises(RuleError) as failure:
        parse(text)
    return failure.value.message, failure.value.start


@pytest.mark.parametrize(
    "text",
    [
        "spend >= 500000 and 客户等级 == '高端系列'",
        "address.city == '上海'",
        "`Customer ID` is not null",
        "a in [1, 2, 3] or b not in ['x']",
        "x between 1 and 10",
        "x not between 1 and 10",
        "name contains 'VIP' and name startswith 'A' and name endswith 'z' and name matches '^A'",
        "(a + b) * c > 1 and not (x or y)",
        "a - (b - c)",
        "-x * 2",
        "tags.contains('VIP')",
        "customer.tags.contains('VIP')",
        "count(order where amount > 100, 30d) > 2",
        "case when spend > 1000 then '高' when spend > 100 then '中' else '低' end",
        "coalesce(city, 'unknown') == 'unknown'",
        "`and` == 1",
    ],
)
def test_identity(text: str) -> None:
    validate_identity(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1", "a == 1"),
        ("a <> 1", "a != 1"),
        ("A AND B OR NOT C", "A and B or not C"),
        ("((a))", "a"),
        ("1_000 + 5e5", "1000 + 500000.0"),
        ('"双引号"', "'双引号'"),
        ("x == 'it\\'s'", "x == 'it\\'s'"),
        ("+a", "a"),
        ("sum(order.amount, 2w)", "sum(order.amount, 2w)"),
        ("avg(telemetry.vibration, 600s)", "avg(telemetry.vibration, 10m)"),
        ("a # a comment\n and b", "a and b"),
    ],
)
def test_normalised(text: str, expected: str) -> None:
    validate_identity(text, expected)


def test_literal_kinds() -> None:
    assert parse("1_000") == t.Literal(1000, span=(0, 5))
    assert parse("5e5") == t.Literal(500000.0, span=(0, 3))
    assert parse("30d") == t.Duration(30 * 86_400_000_000, span=(0, 3))
    assert parse("null") == t.Literal(None, span=(0, 4))
    assert parse("[1, 'a']") == t.ListLit(
        (t.Literal(1, span=(0, 0)), t.Literal("a", span=(0, 0))), span=(0, 0)
    )


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("", "the rule is empty", 0),
        ("a ==", "the rule ends where a value was expected", 4),
        ("a < b < c", "comparisons do not chain; use 'and' (a < b and b < c)", 6),
        ("(a == 1", "expected ')' to close '(', found end of rule", 7),
        ("a == 'open", "unterminated string", 5),
        ("a == 1 2", "unexpected '2' after a complete expression", 7),
        ("a @ b", "unexpected character '@'", 2),
        ("10x > 1", "'10x' is neither a number nor a duration (units: ms s m h d w)", 0),
        ("1__0", "malformed number '1__0'", 0),
        ("`unclosed", "unterminated back-quoted name", 0),
        ("f(a where b, c where d)", "'where' filters only the first argument", 15),
        ("case else 1 end", "'case' needs at least one 'when .. then ..'", 5),
        ("and == 1", "'and' is a keyword; write `and` to use it as a name", 0),
        ("x == '\\q'", "unknown escape '\\q' in string", 6),
        ("a between 1 or 2", "expected 'and' in 'between .. and ..', found 'or'", 12),
    ],
)
def test_errors(text: str, message: str, offset: int) -> None:
    assert error_at(text) == (message, offset)


def test_caret_under_the_fault() -> None:
    with pytest.raises(RuleError) as failure:
        parse("金额 > 1 and ) ")
    assert failure.value.caret("金额 > 1 and ) ") == "金额 > 1 and ) \n" + " " * 13 + "^"


@settings(max_examples=400, deadline=None)
@given(expressions())
def test_print_then_parse_is_identity(text: str) -> None:
    tree = parse(text)
    printed = to_text(tree)
    assert parse(printed) == tree, printed
    assert to_text(parse(printed)) == printed  # printing is stable


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_parser_only_raises_positioned_rule_errors(text: str) -> None:
    try:
        parse(text)
    except RuleError as exc:
        assert 0 <= exc.start <= len(text)
        assert exc.end > exc.start


@settings(max_examples=200, deadline=None)
@given(expressions(), st.integers(min_value=0, max_value=60))
def test_truncated_rules_fail_cleanly(text: str, cut: int) -> None:
    try:
        parse(text[:cut])
    except RuleError as exc:
        assert 0 <= exc.start <= cut
