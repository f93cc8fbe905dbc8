"""The visual builder's form of rules: text -> form -> text keeps the tree, and forms a
person builds turn into the rule text they mean."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from tagloop.rules import parse
from tagloop.rules.builder import BuilderError, builder_text, from_builder, to_builder
from tagloop.rules.printer import to_text
from tests.rules.strategies import expressions


def validate_identity(text: str) -> None:
    """``text`` goes to the builder and back unchanged."""
    assert builder_text(to_builder(parse(text))) == text


def cond(left: str, op: str, *right: Any) -> dict[str, Any]:
    return {"type": "condition", "left": left, "op": op, "right": list(right)}


@pytest.mark.parametrize(
    "text",
    [
        "spend >= 1000",
        "country != 'United Kingdom'",
        "count(order, 30d) > 0",
        "streak(month, sum(order.amount) > 1000) >= 3",
        "has_tag('VIP') and has_tag('海外客户')",
        "city in ['上海', '北京'] or city not in ['x']",
        "spend between 10 and 20.5",
        "email is not null and not (vip or spend < -5)",
        "count(order, 365d) >= 4 and count(order_cancelled, 365d) * 4 > count(order, 365d)",
        "name contains '王' and name startswith 'a'",
        "a and (b and c)",
        "(a or b) and c",
        "not not has_tag('X')",
        "case when a then b else c end",
    ],
)
def test_identity(text: str) -> None:
    validate_identity(text)


def test_shapes_a_person_sees() -> None:
    form = to_builder(parse("count(order, 30d) > 0 and not has_tag('VIP')"))
    assert form == {
        "type": "group",
        "op": "and",
        "items": [
            cond("count(order, 30d)", ">", {"value": 0}),
            {"type": "not", "item": {"type": "tag", "tag": "VIP"}},
        ],
    }
    # A right side that is not a plain value is kept as an expression operand.
    assert to_builder(parse("a * 4 > count(order)")) == cond("a * 4", ">", {"expr": "count(order)"})
    # Arithmetic at the top has no builder shape: an expression item.
    assert to_builder(parse("x in tags")) == {"type": "expr", "text": "x in tags"}


def test_a_form_built_by_hand() -> None:
    form = {
        "type": "group",
        "op": "or",
        "items": [
            cond("spend", ">=", {"value": 1000}),
            {
                "type": "group",
                "op": "and",
                "items": [
                    cond("city", "in", {"value": "上海"}, {"value": "it's"}),
                    cond("score('churn')", "between", {"value": 0.5}, {"value": 1}),
                    cond("email", "is null"),
                ],
            },
            # A group of one is that item; an expression operand is parsed.
            {"type": "group", "op": "and", "items": [cond("a", "==", {"expr": "b + 1"})]},
        ],
    }
    assert builder_text(form) == (
        "spend >= 1000 or city in ['上海', 'it\\'s'] and score('churn') between 0.5 and 1 "
        "and email is null or a == b + 1"
    )


@pytest.mark.parametrize(
    ("form", "message", "span"),
    [
        ({"type": "group", "op": "xor", "items": []}, "op' is 'and' or 'or'", None),
        ({"type": "group", "op": "and", "items": []}, "an empty group", None),
        (cond("spend", "between", {"value": 1}), "items", None),
        (cond("spend", "~", {"value": 1}), "unknown operator '~'", None),
        (cond("spend >", ">", {"value": 1}), "left: ", (7, 8)),  # at the end
        (cond("x", "in"), "'in' needs at least one value", None),
        (cond("x", "==", {"value": [1]}), "right[0]: a value is", None),
        (cond("x", "==", {"value": float("inf")}), "right[0]: a value is", None),
        (cond("x", "==", {"nothing": 1}), "right[0]: an operand is", None),
        ({"type": "tag", "tag": ""}, "choose a tag", None),
        ({"type": "expr", "text": "  "}, "text: fill in the expression", None),
        ({"type": "group", "op": "and", "items": [1, 2]}, "items[0]: each item", None),
        ({"type": "sql"}, "unknown item type 'sql'", None),
    ],
)
def test_forms_that_make_no_rule(
    form: dict[str, Any], message: str, span: tuple[int, int] | None
) -> None:
    with pytest.raises(BuilderError) as failure:
        from_builder(form)
    if message == "items":
        assert "'between' takes 2 values" in failure.value.message
    else:
        assert message in failure.value.message
    if span is not None:
        assert (failure.value.start, failure.value.end) == span


def test_deep_or_huge_forms_are_refused() -> None:
    deep: dict[str, Any] = {"type": "tag", "tag": "x"}
    for _ in range(40):
        deep = {"type": "not", "item": deep}
    with pytest.raises(BuilderError, match="nested more than"):
        from_builder(deep)
    wide = {"type": "group", "op": "or", "items": [{"type": "tag", "tag": "x"}] * 600}
    with pytest.raises(BuilderError, match="more than 500 items"):
        from_builder(wide)


@settings(max_examples=300, deadline=None)
@given(expressions())
def test_builder_round_trip_keeps_the_tree(text: str) -> None:
    tree = parse(text)
    assert from_builder(to_builder(tree)) == tree
    assert parse(builder_text(to_builder(tree))) == tree
    assert builder_text(to_builder(tree)) == to_text(tree)
