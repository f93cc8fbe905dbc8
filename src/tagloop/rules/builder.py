"""The visual condition builder's form of a rule: nested groups of conditions, as JSON.

The console's builder edits this form; the server turns it into rule text and back, so
the builder and the text editor are two views of one tree. Every rule converts
(`to_builder`): what has no builder shape (an arithmetic comparison between two
aggregates, a ``case``) becomes an ``expr`` item holding its text, edited as text inside
the builder. ``from_builder(to_builder(tree)) == tree`` for every tree the parser makes
(a property test holds this), so switching views never changes a rule's meaning.

Items, as JSON:

- ``{"type": "group", "op": "and" | "or", "items": [item, ...]}``: two or more items
  (the builder may hold fewer while one edits; one item stands for itself);
- ``{"type": "not", "item": item}``;
- ``{"type": "condition", "left": TEXT, "op": OP, "right": [operand, ...]}`` where
  ``left`` is an attribute or aggregate as rule text (``spend``, ``count(order, 30d)``)
  and each operand is ``{"value": JSON scalar}`` or ``{"expr": TEXT}``;
- ``{"type": "tag", "tag": NAME}``: the entity holds the tag (``has_tag('NAME')``);
- ``{"type": "expr", "text": TEXT}``: any other boolean expression.

>>> from tagloop.rules.parser import parse
>>> form = to_builder(parse("spend >= 1000 and city in ['上海', '北京']"))
>>> form["items"][1]
{'type': 'condition', 'left': 'city', 'op': 'in', 'right': [{'value': '上海'}, {'value': '北京'}]}
>>> builder_text(form)
"spend >= 1000 and city in ['上海', '北京']"
"""

from __future__ import annotations

import math
from typing import Any

from tagloop.rules import tree as t
from tagloop.rules.errors import RuleError
from tagloop.rules.parser import parse
from tagloop.rules.printer import to_text

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
STRING_TESTS = ("contains", "startswith", "endswith", "matches")
# Operator -> how many operands it takes (None: one or more, a list).
ARITY: dict[str, int | None] = {
    **dict.fromkeys(COMPARISONS, 1),
    **dict.fromkeys(STRING_TESTS, 1),
    "in": None,
    "not in": None,
    "between": 2,
    "not between": 2,
    "is null": 0,
    "is not null": 0,
}
# A builder form is small; a deeper or larger one is not typed by a person.
MAX_DEPTH = 32
MAX_ITEMS = 500

Item = dict[str, Any]


class BuilderError(RuleError):
    """A builder form that does not make a rule; ``path`` names the item at fault
    (``items[1].right[0]``), and the span is in that item's own text when it has one."""

    def __init__(self, message: str, path: str, start: int = 0, end: int | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message, start, end)
        self.path = path
        self.reason = message


# -- rule tree -> builder form ------------------------------------------------------------
def to_builder(node: t.Node) -> Item:
    """The builder form of a (boolean) rule tree."""
    if isinstance(node, t.Logical):
        return {"type": "group", "op": node.op, "items": [to_builder(o) for o in node.operands]}
    if isinstance(node, t.Unary) and node.op == "not":
        return {"type": "not", "item": to_builder(node.operand)}
    condition = _condition(node)
    if condition is not None:
        return condition
    if (
        isinstance(node, t.Call)
        and node.name == "has_tag"
        and node.where is None
        and len(node.args) == 1
        and isinstance(node.args[0], t.Literal)
        and isinstance(node.args[0].value, str)
    ):
        return {"type": "tag", "tag": node.args[0].value}
    return {"type": "expr", "text": to_text(node)}


def _operand(node: t.Node) -> dict[str, Any]:
    if isinstance(node, t.Literal) and _scalar(node.value):
        return {"value": node.value}
    return {"expr": to_text(node)}


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, str | bool | int | float)


def _condition(node: t.Node) -> Item | None:
    def shape(left: t.Node, op: str, right: list[t.Node]) -> Item:
        return {
            "type": "condition",
            "left": to_text(left),
            "op": op,
            "right": [_operand(r) for r in right],
        }

    if isinstance(node, t.Binary) and node.op in COMPARISONS:
        return shape(node.left, node.op, [node.right])
    if isinstance(node, t.StringTest):
        return shape(node.left, node.op, [node.right])
    if isinstance(node, t.In) and isinstance(node.options, t.ListLit) and node.options.items:
        return shape(node.value, "not in" if node.negated else "in", list(node.options.items))
    if isinstance(node, t.Between):
        op = "not between" if node.negated else "between"
        return shape(node.value, op, [node.low, node.high])
    if isinstance(node, t.IsNull):
        return shape(node.value, "is not null" if node.negated else "is null", [])
    return None


# -- builder form -> rule tree ------------------------------------------------------------
def from_builder(item: object) -> t.Node:
    """The rule tree of a builder form; `BuilderError` names the item at fault.

    >>> to_text(from_builder({"type": "not", "item": {"type": "tag", "tag": "VIP"}}))
    "not has_tag('VIP')"
    >>> from_builder({"type": "group", "op": "and", "items": []})
    Traceback (most recent call last):
    ...
    tagloop.rules.builder.BuilderError: an empty group: add a condition or remove the group
    """
    counter = [0]
    return _node(item, "", 0, counter)


def builder_text(item: object) -> str:
    """The rule text of a builder form (what the text editor shows)."""
    return to_text(from_builder(item))


_SPAN = (0, 0)


def _node(item: object, path: str, depth: int, counter: list[int]) -> t.Node:
    counter[0] += 1
    if counter[0] > MAX_ITEMS:
        raise BuilderError(f"more than {MAX_ITEMS} items", path)
    if depth > MAX_DEPTH:
        raise BuilderError(f"groups nested more than {MAX_DEPTH} deep", path)
    if not isinstance(item, dict):
        raise BuilderError("each item is an object with a 'type'", path)
    kind = item.get("type")
    if kind == "group":
        op = item.get("op")
        if op not in ("and", "or"):
            raise BuilderError("a group's 'op' is 'and' or 'or'", path)
        items = item.get("items")
        if not isinstance(items, list):
            raise BuilderError("a group has a list of 'items'", path)
        if not items:
            raise BuilderError("an empty group: add a condition or remove the group", path)
        nodes = [
            _node(sub, _at(path, f"items[{i}]"), depth + 1, counter) for i, sub in enumerate(items)
        ]
        return nodes[0] if len(nodes) == 1 else t.Logical(op, tuple(nodes), span=_SPAN)
    if kind == "not":
        return t.Unary(
            "not", _node(item.get("item"), _at(path, "item"), depth + 1, counter), span=_SPAN
        )
    if kind == "tag":
        tag = item.get("tag")
        if not isinstance(tag, str) or not tag:
            raise BuilderError("choose a tag", path)
        return t.Call("has_tag", (t.Literal(tag, span=_SPAN),), span=_SPAN)
    if kind == "expr":
        return _expression(item.get("text"), _at(path, "text"))
    if kind == "condition":
        return _build_condition(item, path)
    raise BuilderError(f"unknown item type {kind!r}; types: group, not, condition, tag, expr", path)


def _at(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _expression(text: object, path: str) -> t.Node:
    if not isinstance(text, str) or not text.strip():
        raise BuilderError("fill in the expression", path)
    try:
        return parse(text)
    except RuleError as exc:
        raise BuilderError(exc.message, path, exc.start, exc.end) from None


def _build_condition(item: dict[str, Any], path: str) -> t.Node:
    op = item.get("op")
    if op not in ARITY:
        raise BuilderError(f"unknown operator {op!r}; operators: {', '.join(ARITY)}", path)
    left = _expression(item.get("left"), _at(path, "left"))
    right = item.get("right", [])
    if not isinstance(right, list):
        raise BuilderError("'right' is a list of operands", path)
    wanted = ARITY[op]
    if wanted is None and not right:
        raise BuilderError(f"'{op}' needs at least one value", path)
    if wanted is not None and len(right) != wanted:
        raise BuilderError(f"'{op}' takes {wanted} value{'s' if wanted != 1 else ''}", path)
    values = [_value(r, _at(path, f"right[{i}]")) for i, r in enumerate(right)]
    if op in COMPARISONS:
        return t.Binary(op, left, values[0], span=_SPAN)
    if op in STRING_TESTS:
        return t.StringTest(op, left, values[0], span=_SPAN)
    if op in ("in", "not in"):
        options = t.ListLit(tuple(values), span=_SPAN)
        return t.In(left, options, op == "not in", span=_SPAN)
    if op in ("between", "not between"):
        return t.Between(left, values[0], values[1], op == "not between", span=_SPAN)
    return t.IsNull(left, op == "is not null", span=_SPAN)


def _value(operand: object, path: str) -> t.Node:
    if isinstance(operand, dict) and "expr" in operand:
        return _expression(operand["expr"], _at(path, "expr"))
    if isinstance(operand, dict) and "value" in operand:
        value = operand["value"]
        if not _scalar(value):
            raise BuilderError("a value is a string, a number, true, false or null", path)
        if isinstance(value, float) and not math.isfinite(value):  # no rule text for them
            raise BuilderError("a value is a string, a number, true, false or null", path)
        return t.Literal(value, span=_SPAN)
    raise BuilderError('an operand is {"value": ...} or {"expr": "..."}', path)
