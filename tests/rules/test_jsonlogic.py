"""JsonLogic as a front end: the official suite through parse tree -> binder -> stream,
error messages, query-builder exports on typed attributes, and stream == SQL."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tagloop.rules import DictContext, RuleError, Scope, compile_rule, compile_tree, parse, printer
from tagloop.rules import jsvalues as js
from tagloop.rules import tree as t
from tagloop.rules.jsonlogic import compile_jsonlogic, parse_jsonlogic, to_text
from tagloop.rules.sql.expr import Unsupported
from tests.rules import jsonlogic_rules as rules
from tests.rules import jsonlogic_sql as both

SUITE = Path("/work/shared/data/jsonlogic_tests/tests.json")


def _suite() -> list[Any]:
    cases, section, number = [], "start", 0
    for entry in json.loads(SUITE.read_text(encoding="utf-8")):
        if isinstance(entry, str):
            section, number = entry.lstrip("# ").strip(), 0
            continue
        number += 1
        cases.append(pytest.param(*entry, id=f"{section} #{number}"))
    return cases


CASES = _suite()


def evaluate(logic: Any, data: Any) -> Any:
    """``logic`` on ``data`` through the whole pipeline; the names it reads are declared
    as attributes of undeclared type, as an entity dictionary would."""
    tree = parse_jsonlogic(logic)
    names = {n.parts[0] for n in tree.walk() if isinstance(n, t.Name)}
    rule = compile_tree(to_text(logic), tree, Scope("e", dict.fromkeys(names, "any")), want=None)
    return rule.evaluate(DictContext(data))


def same(a: Any, c: Any) -> bool:
    """JSON equality that keeps booleans apart from numbers."""
    if isinstance(a, bool) or isinstance(c, bool):
        return a is c
    if isinstance(a, list) and isinstance(c, list):
        return len(a) == len(c) and all(same(x, y) for x, y in zip(a, c, strict=True))
    if isinstance(a, dict) and isinstance(c, dict):
        return a.keys() == c.keys() and all(same(a[k], c[k]) for k in a)
    return bool(a == c)  # 3 == 3.0: JavaScript has one number type


def test_the_suite_is_the_official_one() -> None:
    assert len(CASES) == 275


@pytest.mark.parametrize(("logic", "data", "expected"), CASES)
def test_official_suite(logic: Any, data: Any, expected: Any) -> None:
    assert same(evaluate(logic, data), expected)


def test_printed_text_spans_and_round_trip() -> None:
    """Every part's span is its place in the printed text, and the text parses back."""
    for case in CASES:
        tree = parse_jsonlogic(case.values[0])
        text = printer.to_text(tree)
        for node in tree.walk():
            assert text[node.span[0] : node.span[1]] == printer.to_text(node), text
        assert parse(text) == tree


# -- JavaScript's semantics, where they differ from tagloop's own operators -----------------
@pytest.mark.parametrize(
    ("logic", "data", "expected"),
    [
        ({"==": [{"var": "x"}, None]}, {}, True),  # tagloop's == gives null here
        ({"==": [None, 0]}, {}, False),
        ({"==": [False, "0"]}, {}, True),
        ({"==": [[1, 2], "1,2"]}, {}, True),
        ({"==": [{"var": "a"}, {"var": "a"}]}, {"a": [1]}, True),  # the same object
        ({"==": [[1], [1]]}, {}, False),  # two objects
        ({"<": [None, 1]}, {}, True),  # null is 0
        ({"<": ["10", "9"]}, {}, True),  # two texts compare as texts
        ({"<": ["10", 9]}, {}, False),
        ({"<": ["\U0001f600", "\uff21"]}, {}, True),  # UTF-16 code units, not code points
        ({"+": ["3.5kg", 1]}, {}, 4.5),  # parseFloat
        ({"-": ["3.5kg", 1]}, {}, None),  # Number(): NaN, null in JSON
        ({"+": [{"var": "x"}, 1]}, {}, None),  # parseFloat(null) is NaN
        ({"-": [{"var": "x"}, 1]}, {}, -1),  # Number(null) is 0
        ({"/": [1, 0]}, {}, None),  # Infinity, null in JSON
        ({">": [{"/": [1, 0]}, 1e308]}, {}, True),  # but Infinity inside the rule
        ({"%": [-7, 2]}, {}, -1),
        ({"*": ["2"]}, {}, "2"),  # reduce() without a start: untouched
        ({"cat": [None, 1.5, True, [1, [2, None]]]}, {}, "1.5true1,2,"),
        ({"cat": [1e21, 0.1, -0.0]}, {}, "1e+210.10"),
        ({"in": [None, "null"]}, {}, True),
        ({"in": ["", ""]}, {}, False),
        ({"in": [1, ["1"]]}, {}, False),  # strict equality in lists
        ({"substr": ["a\U0001f600b", 1, 2]}, {}, "\U0001f600"),  # UTF-16 units
        ({"var": "name.length"}, {"name": "a\U0001f600"}, 3),
        ({"var": ["a", 5]}, {"a": None}, None),  # present but null: no default
        ({"missing_some": [1, None]}, {}, None),  # JavaScript throws
        ({"if": [{"var": "x"}, {"log": "yes"}, "no"]}, {}, "no"),
        ({"and": []}, {}, None),
        ({"max": []}, {}, None),  # -Infinity
        ({"==": [1]}, {}, False),  # 1 == undefined
        ({"==": [None]}, {}, True),  # null == undefined
        ({"!": []}, {}, True),
        (
            {"reduce": [[1, 2], {"cat": [{"var": "accumulator"}, {"var": "current"}]}, {"x": 1}]},
            {},
            "[object Object]12",
        ),  # the start value is taken as written, unevaluated
        ({"map": [[1, 2], {"var": "z"}]}, {"z": 5}, [None, None]),  # data is the item
        (
            {"filter": [{"var": "xs"}, {"some": [{"var": "ys"}, {"==": [{"var": ""}, 2]}]}]},
            {"xs": [{"ys": [1, 2]}, {"ys": [3]}]},
            [{"ys": [1, 2]}],
        ),
    ],
)
def test_javascript_semantics(logic: Any, data: Any, expected: Any) -> None:
    assert same(evaluate(logic, data), expected)


def test_log_is_lazy_in_if(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="tagloop.rules.jsonlogic")
    assert evaluate({"if": [True, {"log": "then"}, {"log": "else"}]}, {}) == "then"
    assert [r.getMessage() for r in caplog.records] == ["jsonlogic log: 'then'"]


def test_coercions() -> None:
    assert [js.to_number(s) for s in ("\u3000 7 ", "0b11", "0o17", "+.5e1", "1_0")][:4] == [
        7.0,
        3.0,
        15.0,
        5.0,
    ]
    assert math.isnan(js.to_number("1_0")) and math.isnan(js.to_number({}))
    assert [js.number_to_string(x) for x in (1e20, 123e-20, -1.5, 2**53 + 2.0)] == [
        "100000000000000000000",
        "1.23e-18",
        "-1.5",
        "9007199254740994",
    ]
    assert js.loose_equals(True, "1") and not js.loose_equals(True, "true")
    assert js.strict_equals(2**53 + 1, 2**53)  # both are the same double


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("logic", "message"),
    [
        ({"and": [{"==": [1, 1]}, {"fo": [1]}]}, "$.and[1]: unknown operator 'fo'"),
        ({"!": {"mising": ["a"]}}, "$[\"!\"]: unknown operator 'mising' (did you mean 'missing'?)"),
        ({"or": [{"filtr": []}]}, "$.or[0]: unknown operator 'filtr' (did you mean 'filter'?)"),
        ({"*": []}, "$[\"*\"]: '*' needs at least one value"),
        ({"method": ["abc", "toUpperCase"]}, "$: 'method' calls JavaScript methods: not supported"),
        ({"==": [math.nan, 1]}, '$["=="][0]: nan is not a JSON number'),
        ({"==": [{1, 2}, 1]}, '$["=="][0]: not JSON (Object of type set is not JSON serializable)'),
    ],
)
def test_front_end_errors(logic: Any, message: str) -> None:
    with pytest.raises(RuleError) as failure:
        parse_jsonlogic(logic)
    assert failure.value.message == message


def test_binder_errors_name_the_json_path_and_point_into_the_text() -> None:
    logic = {"and": [{"==": [{"var": "country"}, "CN"]}, {">": [{"var": "spned"}, 100]}]}
    with pytest.raises(RuleError) as failure:
        compile_jsonlogic(logic, both.SCOPE)
    error = failure.value
    assert error.message == (
        "$.and[1][\">\"][0]: unknown attribute 'spned' of customer (did you mean 'spend'?)"
    )
    assert error.caret(to_text(logic, condition=True)).splitlines()[1].strip() == "^^^^^"
    with pytest.raises(RuleError, match="not inside an aggregate"):
        compile_rule(
            "count(order where jl_truthy(jl_data())) > 1", Scope("c", {}, events={"order": {}})
        )


# -- a query builder's export on a typed entity -------------------------------------------------
EXPORT = {
    "and": [
        {"==": [{"var": "country"}, "CN"]},
        {">": [{"var": "spend"}, "100"]},  # builders export numbers as text by default
        {"!": {"in": [{"var": "name"}, ["test", "demo"]]}},
        {"or": [{"==": [{"var": "vip"}, True]}, {"<=": [1, {"var": "orders"}, 10]}]},
        {">=": [{"var": "signup"}, "2024-01-01"]},  # a time is compared as its stored text
    ]
}
PROFILES: list[dict[str, Any]] = [
    {
        "country": "CN",
        "spend": 150,
        "name": "Ann",
        "vip": True,
        "orders": 0,
        "signup": "2024-03-05T00:00:00.000000Z",
    },
    {
        "country": "CN",
        "spend": 150,
        "name": "Bo",
        "orders": 3,
        "signup": "2024-03-05T00:00:00.000000Z",
    },
    {
        "country": "CN",
        "spend": 150,
        "name": "test",
        "vip": True,
        "signup": "2024-03-05T00:00:00.000000Z",
    },
    {"country": "CN", "spend": "150", "name": "Cy", "vip": True},
    {"country": "US", "spend": 500, "name": "Di", "vip": True},
    {},
]


def test_query_builder_export() -> None:
    rule = both.compile_both(EXPORT)
    assert rule.type == "boolean" and rule.attributes == {
        "country",
        "spend",
        "name",
        "vip",
        "orders",
        "signup",
    }
    assert rule.text.startswith("jl_and(jl_eq(country, 'CN'), jl_gt(spend, '100'), ")
    assert both.run_stream(rule, PROFILES) == [True, True, False, False, False, False]
    with both.databases(PROFILES) as connections:
        for dialect, conn in connections.items():
            assert both.run_sql(conn, dialect, rule.bound) == [
                True,
                True,
                False,
                False,
                False,
                False,
            ], dialect


# -- stream == SQL ------------------------------------------------------------------------------
FIXED: list[dict[str, Any]] = [
    {},
    {"country": None, "name": None, "spend": None, "orders": None, "vip": None, "joined": None},
    {
        "country": "CN",
        "name": "Ann",
        "spend": 150,
        "orders": 3,
        "vip": True,
        "joined": "2024-01-02",
        "signup": "2024-03-05T00:00:00.000000Z",
    },
    {"country": "US", "name": "", "spend": 0, "orders": 0, "vip": False, "joined": "2023-12-31"},
    {"country": "cn", "name": "12", "spend": -2.5, "orders": -7, "vip": True},
    {"country": "中国", "name": " 5 ", "spend": 0.1, "orders": 1, "signup": "2025-01-01T00:00:00Z"},
    {"country": "", "name": "a\U0001f600", "spend": 1e20, "orders": 12, "vip": False},
    {"country": "US", "name": "上海", "spend": 100, "orders": 100, "joined": "2024-02-29"},
]
REPRESENTATIVE = [
    {"!=": [{"var": "country"}, "US"]},
    {"===": [{"var": "orders"}, 3]},
    {"!==": [{"var": "vip"}, None]},
    {"==": [{"var": "vip"}, 1]},
    {"==": [{"var": "spend"}, "1e2"]},
    {"<": [0, {"var": "spend"}, 200]},
    {"<": [{"var": "name"}, "m"]},
    {">": [{"var": "joined"}, "2024-01-01"]},
    {"in": [{"var": "country"}, ["CN", "US", None]]},
    {"in": ["n", {"var": "name"}]},
    {"in": [{"var": "country"}, "CNUS"]},
    {"if": [{"var": "vip"}, "gold", {">": [{"var": "spend"}, 10]}, "silver", "none"]},
    {"cat": [{"var": "name"}, "-", {"var": "vip"}, 3]},
    {"or": [{"var": "country"}, "none"]},
    {"and": [{"var": "orders"}, {"var": "spend"}]},
    {"+": [{"var": "spend"}, {"var": "orders"}, "1"]},
    {"-": [{"var": "spend"}]},
    {"*": [{"var": "orders"}, 2.5]},
    {"/": [{"var": "spend"}, 4]},
    {"%": [{"var": "orders"}, 4]},
    {"max": [{"var": "orders"}, {"var": "spend"}, {"var": "vip"}]},
    {"!!": [{"-": [{"var": "spend"}, {"var": "spend"}]}]},
    {"and": [{">": [{"/": [1, 0]}, 1e308]}, {"var": "vip"}]},  # Infinity, folded
    {"/": [1, 0]},
]


@pytest.fixture(scope="module")
def connections() -> Any:
    with both.databases(FIXED) as found:
        yield found


def check(logic: Any, connections: dict[str, Any], want: str | None) -> bool:
    """Stream == SQL on every database for ``logic``; False if SQL cannot express it."""
    try:
        rule = both.compile_both(logic, want)
    except RuleError:
        return False
    expected = both.run_stream(rule, FIXED)
    for dialect, conn in connections.items():
        try:
            got = both.run_sql(conn, dialect, rule.bound)
        except Unsupported:
            return False
        pairs = zip(expected, got, strict=True)
        assert all(both.agree(a, c) for a, c in pairs), (dialect, rule.text, expected, got)
    return True


@pytest.mark.parametrize("logic", REPRESENTATIVE, ids=lambda r: json.dumps(r)[:40])
@pytest.mark.parametrize("want", ["boolean", None])
def test_stream_equals_sql(logic: Any, want: str | None, connections: dict[str, Any]) -> None:
    assert check(logic, connections, want)


@pytest.mark.parametrize(
    ("logic", "reason"),
    [
        ({"map": [{"var": "x"}, 1]}, "'map'"),
        ({"missing": ["country"]}, "'missing'"),
        ({"var": ["country", "none"]}, "'var' with a default"),
        ({"==": [{"var": "name"}, 5]}, "reading the text"),
        ({"/": [1, {"var": "orders"}]}, "dividing by a value"),
        ({"<": [{"var": "name"}, {"var": "country"}]}, "ordering two texts"),
        ({"<": [{"var": "name"}, "\U0001f600"]}, "from U+D800 on"),
        ({"==": [{"var": "address.city"}, "x"]}, "not a declared scalar"),
        ({"cat": [{"var": "spend"}]}, "writing the number"),
    ],
)
def test_what_sql_cannot_express(logic: Any, reason: str) -> None:
    scope = Scope("customer", {**both.SCOPE.fields, "address": "object", "x": "list"})
    rule = compile_jsonlogic(logic, scope, want=None)
    with pytest.raises(Unsupported, match=re.escape(reason)):
        both.sql_of("sqlite", rule.bound)


# -- random rules (tests.rules.jsonlogic_rules) -------------------------------------------------
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(logic=rules.builder_rules())
def test_query_builder_subset_compiles_to_sql_and_agrees(
    logic: Any, connections: dict[str, Any]
) -> None:
    assert check(logic, connections, "boolean"), logic


@SETTINGS
@given(logic=rules.any_rules(), want=st.sampled_from(["boolean", None]))
def test_random_rules_compile_or_fail_cleanly_and_agree(
    logic: Any, want: str | None, connections: dict[str, Any]
) -> None:
    event("sql" if check(logic, connections, want) else "stream only")
