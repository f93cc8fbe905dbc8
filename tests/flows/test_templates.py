"""Flow argument templates: Chinese text, native values of single expressions, the sandbox,
and error messages that name the template and the undefined name (no Jinja2 traceback)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagloop.flows.actions.base import ActionFailed
from tagloop.flows.templates import check, render, render_value

CUSTOMER = {
    "id": "C-0042",
    "type": "customer",
    "name": "张三",
    "city": "上海",
    "phone": "013800138000",
    "tags": {"VIP": True, "高价值": True},
}
SCOPE: dict[str, Any] = {
    "event": {
        "type": "order_created",
        "time": "2024-03-05T08:00:00Z",
        "id": "E-1",
        "properties": {"amount": 1288.5, "items": ["茶叶", "茶具"], "paid": True, "count": 2},
    },
    "entity": CUSTOMER,
    "customer": CUSTOMER,
    "run": {"id": "r1", "flow": "vip_welcome"},
}


def failure(text: str, scope: dict[str, Any] | None = None) -> ActionFailed:
    with pytest.raises(ActionFailed) as caught:
        render_value(text, SCOPE if scope is None else scope)
    return caught.value


# -- rendering ---------------------------------------------------------------------------
def test_chinese_text_renders_with_the_entity_type_name_and_the_event() -> None:
    text = "{{ customer.name }}（{{ customer.city }}）下单 {{ event.properties.amount }} 元"
    assert render(text, SCOPE) == "张三（上海）下单 1288.5 元"


def test_loops_filters_and_tags_work_in_text() -> None:
    text = (
        "{% for item in event.properties['items'] %}"
        "{{ item }}{% if not loop.last %}、{% endif %}"
        "{% endfor %}"
    )
    assert render(text, SCOPE) == "茶叶、茶具"
    assert render("{{ entity.tags | list | join(',') }}", SCOPE) == "VIP,高价值"
    assert render("{{ run.flow | upper }}", SCOPE) == "VIP_WELCOME"


def test_a_mapping_key_wins_over_a_dict_method_of_the_same_name() -> None:
    # ``items`` is a common event property and a dict method; the data is what is meant.
    assert render("{{ event.properties.items | length }}", SCOPE) == "2"


def test_no_autoescape_and_trailing_newline_kept() -> None:
    scope = {"x": "<b>A & B</b>"}
    assert render("{{ x }}\n", scope) == "<b>A & B</b>\n"


def test_a_single_expression_gives_its_native_value() -> None:
    assert render_value("{{ event.properties.amount }}", SCOPE) == 1288.5
    assert render_value("  {{ event.properties.paid }} ", SCOPE) is True
    assert render_value("{{ event.properties.count * 2 }}", SCOPE) == 4
    assert render_value("{{- customer.tags -}}", SCOPE) == {"VIP": True, "高价值": True}
    assert render_value("{{ event.properties['items'] | map('upper') }}", SCOPE) == ["茶叶", "茶具"]
    assert render_value("{{ none }}", SCOPE) is None


def test_strings_stay_strings_even_when_they_look_like_numbers() -> None:
    # A phone number with a leading zero, or an id of digits, must not become an int.
    assert render_value("{{ customer.phone }}", SCOPE) == "013800138000"
    assert render_value("{{ '42' }}", SCOPE) == "42"


def test_two_expressions_or_text_around_one_give_text() -> None:
    assert render_value("{{ event.properties.count }}{{ event.properties.count }}", SCOPE) == "22"
    assert render_value("共 {{ event.properties.count }} 件", SCOPE) == "共 2 件"


def test_nested_structures_are_rendered_and_keys_left_alone() -> None:
    value = {
        "{{ not_a_key_template }}": [
            "{{ customer.id }}",
            {"total": "{{ event.properties.amount }}"},
        ],
        "n": 3,
        "ok": None,
        "pair": ("{{ run.id }}", 1),
    }
    assert render_value(value, SCOPE) == {
        "{{ not_a_key_template }}": ["C-0042", {"total": 1288.5}],
        "n": 3,
        "ok": None,
        "pair": ("r1", 1),
    }


# -- errors ------------------------------------------------------------------------------
def test_an_undefined_name_is_named() -> None:
    exc = failure("{{ custmer.name }}")
    assert exc.message == "template '{{ custmer.name }}': 'custmer' is undefined"


def test_an_undefined_name_in_text_is_named_too() -> None:
    with pytest.raises(ActionFailed) as caught:
        render("您好 {{ custmer.name }}", SCOPE)
    assert caught.value.message == "template '您好 {{ custmer.name }}': 'custmer' is undefined"


def test_a_bare_undefined_expression_fails_rather_than_giving_an_undefined_object() -> None:
    assert failure("{{ nobody }}").message == "template '{{ nobody }}': 'nobody' is undefined"


def test_a_misspelt_attribute_lists_the_keys_there_are() -> None:
    message = failure("{{ customer.nmae }}").message
    assert message.startswith(
        "template '{{ customer.nmae }}': 'dict object' has no attribute 'nmae'"
    )
    assert "name" in message and "city" in message


def test_a_render_error_in_a_long_template_names_its_line_and_shortens_the_text() -> None:
    text = "尊敬的客户：\n感谢您的订单。\n{{ event.properties.totl }}\n" + "此致敬礼 " * 20
    message = failure(text).message
    assert "line 3: 'dict object' has no attribute 'totl'" in message
    quoted = message.split("': ", 1)[0]
    assert quoted.endswith("…") and len(quoted) < 80


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(ActionFailed) as caught:
        check("第一行\n第二行 {{ customer.name }\n")
    assert "line 2: unexpected '}'" in caught.value.message
    with pytest.raises(ActionFailed) as caught:
        render("{% if customer.vip %}VIP", SCOPE)
    assert "line 1:" in caught.value.message and "endif" in caught.value.message


def test_check_compiles_without_looking_names_up() -> None:
    check("{{ anything.at_all }} 和 {% for x in y %}{{ x }}{% endfor %}")
    check("no template")


def test_runtime_errors_of_the_template_are_action_failures() -> None:
    assert "ZeroDivisionError" in failure("{{ 1 / 0 }}").message
    assert "TypeError" in failure("{{ customer.name + 1 }}").message


def test_the_sandbox_blocks_python_internals_and_mutation() -> None:
    assert "unsafe" in failure("{{ ''.__class__.__mro__ }}").message
    assert "unsafe" in failure("{{ customer.tags.update({'x': 1}) }}").message
    assert "unsafe" in failure("{{ event.properties['items'].append('x') }}").message
    assert SCOPE["event"]["properties"]["items"] == ["茶叶", "茶具"]
    assert "x" not in CUSTOMER["tags"]


def test_no_jinja_traceback_is_chained_to_the_error() -> None:
    exc = failure("{{ custmer.name }}")
    assert exc.__cause__ is None and exc.__suppress_context__
    with pytest.raises(ActionFailed) as caught:
        check("{{ x }")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# -- properties --------------------------------------------------------------------------
plain_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40).filter(
    lambda s: "{{" not in s and "{%" not in s
)
json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | plain_text
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(plain_text)
def test_a_string_without_template_markers_is_returned_unchanged(text: str) -> None:
    assert render_value(text, SCOPE) is text


@given(json_values)
def test_structures_without_templates_are_preserved(value: Any) -> None:
    result = render_value(value, SCOPE)
    assert result == value
    assert type(result) is type(value)


@given(json_values)
def test_a_single_expression_returns_any_json_value_as_it_is(value: Any) -> None:
    assert render_value("{{ value }}", {"value": value}) == value


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_text_is_rendered_verbatim_without_escaping(text: str) -> None:
    assert render("{{ text }}", {"text": text}) == text


@given(st.lists(st.integers(), max_size=5), st.floats(allow_nan=False, allow_infinity=False))
def test_values_inside_a_structure_are_rendered_in_place(numbers: list[int], amount: float) -> None:
    value = {"list": ["{{ numbers }}", "x"], "deep": [{"amount": "{{ amount }}"}]}
    result = render_value(value, {"numbers": numbers, "amount": amount})
    assert result == {"list": [numbers, "x"], "deep": [{"amount": amount}]}
    assert math.isfinite(result["deep"][0]["amount"])
