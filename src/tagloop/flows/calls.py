"""The call form of a step: ``set_priority(HIGH)``, ``notify(channel='dingtalk')``.

Parsed with Python's own expression grammar (`ast`, never evaluated): arguments are
literals (text, numbers, true/false/null, lists, mappings) or bare words, which are text
(``HIGH``, ``VIP``, ``高``), as flow authors write them in the reference platform; so are
durations (``due=4h``).

>>> parse_call("set_priority(HIGH)")
Call(name='set_priority', positional=['HIGH'], named={})
>>> parse_call("notify(channel='dingtalk', retries=3, tags=[VIP, 高价值])").named
{'channel': 'dingtalk', 'retries': 3, 'tags': ['VIP', '高价值']}
>>> parse_call("skip_credit_check")
Call(name='skip_credit_check', positional=[], named={})
>>> parse_call("create_work_order(title='4h 内处理', due=4h)").named
{'title': '4h 内处理', 'due': '4h'}
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

# A duration written bare (4h, 30m, 1.5d) outside quotes: text, as a bare word is.
_DURATION = re.compile(r"(?<![\w.'\"])(\d+(?:\.\d+)?(?:ms|s|m|h|d|w))(?![\w'\"])")
_QUOTED = re.compile(r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")
_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False}


class CallError(ValueError):
    """A step that is not a call; ``offset`` is the character at fault."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class Call:
    name: str
    positional: list[Any] = field(default_factory=list)
    named: dict[str, Any] = field(default_factory=dict)


def parse_call(text: str) -> Call:
    """Parse ``name`` or ``name(args)``; raises `CallError` with the offset at fault."""
    source = _quote_durations(text.strip())
    lead = len(text) - len(text.lstrip())
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as exc:
        offset = (exc.offset or 1) - 1
        hint = ""
        if source.count("(") != source.count(")"):
            hint = " (in a YAML [list], quote a call that has commas: a comma ends an item)"
        raise CallError(
            "expected an action call such as set_priority(HIGH) or notify(channel='dingtalk')"
            + hint,
            lead + min(offset, len(text.strip())),
        ) from None
    if isinstance(tree, ast.Name):
        return Call(_word(source, tree))
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise CallError("expected an action name, optionally with arguments in ( )", lead)
    positional = [_value(source, arg, lead) for arg in tree.args]
    named: dict[str, Any] = {}
    for keyword in tree.keywords:
        if keyword.arg is None:
            raise CallError("'**' is not allowed in an action call", lead + keyword.col_offset)
        segment = ast.get_source_segment(source, keyword) or keyword.arg
        named[segment.split("=", 1)[0].strip()] = _value(source, keyword.value, lead)
    return Call(_word(source, tree.func), positional, named)


def _word(source: str, node: ast.Name) -> str:
    """A bare word as written: Python folds identifiers to NFKC (``ª`` would be ``a``)."""
    return ast.get_source_segment(source, node) or node.id


def _quote_durations(text: str) -> str:
    """Quote bare durations outside string literals (``due=4h`` -> ``due='4h'``); the
    quotes keep each duration's length + 2, which only shifts error offsets after it."""
    parts = _QUOTED.split(text)
    return "".join(part if i % 2 else _DURATION.sub(r"'\1'", part) for i, part in enumerate(parts))


def _value(source: str, node: ast.expr, lead: int) -> Any:
    if isinstance(node, ast.Constant) and not isinstance(node.value, bytes | complex):
        return node.value
    if isinstance(node, ast.Name):
        word = _word(source, node)
        return _CONSTANTS.get(word, word)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _value(source, node.operand, lead)
        if isinstance(inner, int | float) and not isinstance(inner, bool):
            return -inner
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(source, item, lead) for item in node.elts]
    if isinstance(node, ast.Dict):
        out: dict[str, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise CallError("'**' is not allowed in an action call", lead + value.col_offset)
            out[str(_value(source, key, lead))] = _value(source, value, lead)
        return out
    raise CallError(
        "an argument must be text, a number, true/false/null, a list or a mapping",
        lead + node.col_offset,
    )
