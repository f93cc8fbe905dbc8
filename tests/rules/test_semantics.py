"""Null semantics and operators of the streaming evaluator, and the type checker."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagloop.rules import DictContext, RuleError, Scope, compile_rule, parse
from tagloop.rules.binder import bind
from tagloop.rules.stream import compile_stream
from tests.rules.strategies import expressions

SCOPE = Scope(
    "customer",
    {
        "spend": "number",
        "orders": "integer",
        "city": "string",
        "vip": "boolean",
        "address": "object",
        "interests": "list",
        "客户等级": "string",
        "Customer ID": "string",
    },
)


def any_scope(tree: Any) -> Scope:
    """A scope declaring every name the rule uses, untyped: semantics at run time."""
    from tagloop.rules import tree as t

    names = {n.parts[0] for n in tree.walk() if isinstance(n, t.Name)}
    return Scope("e", {name: "any" for name in names})


def compiled(text: str, *, specialise: bool = True) -> Any:
    tree = parse(text)
    return compile_stream(bind(tree, any_scope(tree), want=None), specialise=specialise)


def value(text: str, **profile: Any) -> Any:
    return compiled(text)(DictContext(profile))


TRUTH = [True, False, None]


@pytest.mark.parametrize("a", TRUTH)
@pytest.mark.parametrize("b", TRUTH)
def test_kleene_logic(a: bool | None, b: bool | None) -> None:
    expected_and = False if False in (a, b) else None if None in (a, b) else True
    expected_or = True if True in (a, b) else None if None in (a, b) else False
    assert value("a and b", a=a, b=b) is expected_and
    assert value("a or b", a=a, b=b) is expected_or
    # De Morgan holds in three-valued logic.
    assert value("not (a and b)", a=a, b=b) is value("not a or not b", a=a, b=b)


@pytest.mark.parametrize(
    ("text", "profile", "expected"),
    [
        ("not x", {}, None),
        ("x == 1", {}, None),
        ("x != 1", {}, None),
        ("x > 1", {"x": "2"}, None),  # a string never orders against a number
        ("x == 1", {"x": True}, None),  # nor does a boolean equal a number
        ("x == 1", {"x": 1.0}, True),
        ("x + 1", {"x": None}, None),
        ("x / 0", {"x": 5}, None),
        ("x % 0", {"x": 5}, None),
        ("'a' + 'b'", {}, "ab"),
        ("x in [1, 2]", {"x": None}, None),
        ("x in [1, null]", {"x": 2}, None),
        ("x in [1, null]", {"x": 1}, True),
        ("x not in [1, 2]", {"x": 3}, True),
        ("x between 1 and 3", {"x": 3}, True),
        ("x not between 1 and 3", {"x": 4}, True),
        ("x between 1 and 3", {"x": None}, None),
        ("x is null", {}, True),
        ("x is not null", {"x": 0}, True),
        ("x contains 'VIP'", {"x": "a VIP b"}, True),
        ("x contains 'VIP'", {"x": ["VIP", "new"]}, True),
        ("x startswith 'A'", {"x": None}, None),
        ("x matches '^[0-9]+$'", {"x": "123"}, True),
        ("address.city == '上海'", {"address": {"city": "上海"}}, True),
        ("address.city == '上海'", {"address": "上海"}, None),
        ("coalesce(x, y, 3)", {"y": 2}, 2),
        ("max(1, x)", {"x": None}, None),
        ("min(3, 1, 2)", {}, 1),
        ("abs(-2.5)", {}, 2.5),
        ("round(2.5)", {}, 3.0),
        ("round(-2.5)", {}, -3.0),
        ("round(1.005, 2)", {}, 1.01),
        ("lower('ABC') == 'abc'", {}, True),
        ("len(x)", {"x": "上海"}, 2),
        ("case when x > 10 then '高' when x > 5 then '中' else '低' end", {"x": 7}, "中"),
        ("case when x > 10 then '高' end", {"x": None}, None),
    ],
)
def test_values(text: str, profile: dict[str, Any], expected: Any) -> None:
    assert value(text, **profile) == expected
    if expected is None or isinstance(expected, bool):
        assert value(text, **profile) is expected


@given(
    st.one_of(
        st.none(), st.integers(), st.floats(allow_nan=False), st.text(max_size=3), st.booleans()
    )
)
def test_is_null_is_never_null(x: Any) -> None:
    assert value("x is null", x=x) is (x is None)
    assert value("x is not null", x=x) is (x is not None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spned > 1", "unknown attribute 'spned' of customer (did you mean 'spend'?)"),
        ("city > 1", "cannot compare a string with an integer"),
        ("spend", "a tag rule must be true or false, but this is a number"),
        ("city + 1 > 2", "'+' needs a number, not a string"),
        ("not spend", "'not' needs a boolean, not a number"),
        ("vip and city", "'and' needs a boolean, not a string"),
        ("city.name == 'x'", "'city' is a string, it has no field 'name'"),
        ("lower(spend) == 'x'", "lower() needs a string, not a number"),
        ("abs() > 1", "abs() takes 1 argument(s), got 0"),
        ("lowr(city) == 'x'", "unknown function 'lowr' (did you mean 'lower'?)"),
        (
            "city matches '('",
            "invalid regular expression: missing ), unterminated subpattern at position 0",
        ),
        ("city in 'x'", "'in' needs a list on its right, not a string"),
        ("[1, 'a'] == [1]", "list items must all have the same type"),
        ("30d > 1", "cannot compare a duration with an integer"),
        (
            "case when vip then 1 else 'x' end == 1",
            "all branches of 'case' must have the same type",
        ),
    ],
)
def test_check_errors(text: str, message: str) -> None:
    with pytest.raises(RuleError) as failure:
        compile_rule(text, SCOPE)
    assert failure.value.message == message


def test_dependencies_and_system_attributes() -> None:
    rule = compile_rule(
        "`Customer ID` startswith 'C' and event_count > 2 and 客户等级 == '高'", SCOPE
    )
    assert rule.attributes == {"Customer ID", "event_count", "客户等级"}
    profile = DictContext({"Customer ID": "C-1", "event_count": 3, "客户等级": "高"})
    assert rule.evaluate(profile) is True


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5),
    st.sampled_from(["上海", "gold", "a", ""]),
    st.just([1]),
    st.just({"a": 1}),
)


@given(
    x=values,
    literal=st.one_of(st.integers(-5, 5), st.floats(-5, 5), st.sampled_from(["上海", "gold", "a"])),
    op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
)
def test_fast_paths_mean_the_same_as_the_general_closures(x: Any, literal: Any, op: str) -> None:
    from tagloop.rules.printer import _literal

    for text in (
        f"x {op} {_literal(literal)}",
        "x in ['gold', '上海']",
        "x not in ['gold', '上海']",
    ):
        fast = compiled(text)(DictContext({"x": x}))
        general = compiled(text, specialise=False)(DictContext({"x": x}))
        assert fast == general and type(fast) is type(general), (text, x)


profiles = st.fixed_dictionaries(
    {},
    optional={
        name: values for name in ("spend", "city", "客户等级", "orders", "vip", "Customer ID")
    },
)


@settings(max_examples=300, deadline=None)
@given(expressions(), profiles)
def test_specialised_and_general_compilation_agree_on_any_rule(text: str, profile: Any) -> None:
    try:
        general = compiled(text, specialise=False)(DictContext(profile))
    except (RuleError, TypeError, ValueError, OverflowError, re.error):
        return  # random trees may be ill-formed; the binder rejects those
    assert compiled(text)(DictContext(profile)) == general
