"""Rule trees back to text, with the fewest parentheses that keep the meaning.

``parse(to_text(tree)) == tree`` for every tree the parser produces (a property test holds
this); the console's visual condition builder relies on it to round-trip with the text form.
"""

from __future__ import annotations

from tagloop.names import is_identifier
from tagloop.rules import tree as t
from tagloop.rules.tokens import KEYWORDS

# Binding strength, loosest first (mirrors the parser).
OR, AND, NOT, COMPARE, ADD, MUL, UNARY, ATOM = range(1, 9)
_BINARY = {"+": ADD, "-": ADD, "*": MUL, "/": MUL, "%": MUL}
_UNITS = (
    ("w", 604_800_000_000),
    ("d", 86_400_000_000),
    ("h", 3_600_000_000),
    ("m", 60_000_000),
    ("s", 1_000_000),
    ("ms", 1_000),
)


def to_text(node: t.Node) -> str:
    """Render a tree as rule text.

    >>> from tagloop.rules.parser import parse
    >>> to_text(parse("(a + b) * c > 1 and not (x or y)"))
    '(a + b) * c > 1 and not (x or y)'
    """
    return _render(node, OR)


def _wrap(text: str, own: int, needed: int) -> str:
    return f"({text})" if own < needed else text


def name(part: str) -> str:
    """A name as rule text: bare when possible, else back-quoted."""
    return part if is_identifier(part) and part.lower() not in KEYWORDS else f"`{part}`"


def member(part: str) -> str:
    """A name after '.': keywords are fine there (``tags.contains``)."""
    return part if is_identifier(part) else f"`{part}`"


def string(value: str) -> str:
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\0", "\\0")
    )
    return f"'{escaped}'"


def _literal(value: object) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return string(value)
    return repr(value)


def _duration(micros: int) -> str:
    for unit, size in _UNITS:
        if micros % size == 0:
            return f"{micros // size}{unit}"
    raise ValueError(f"{micros} µs is not a whole number of milliseconds")


def _args(node: t.Call | t.Method) -> str:
    parts = [_render(arg, OR) for arg in node.args]
    if isinstance(node, t.Call) and node.where is not None:
        parts[0] = f"{parts[0]} where {_render(node.where, OR)}"
    return ", ".join(parts)


def _render(node: t.Node, needed: int) -> str:
    if isinstance(node, t.Literal):
        text = _literal(node.value)
        # A negative number binds like unary minus.
        own = UNARY if text.startswith("-") else ATOM
        return _wrap(text, own, needed)
    if isinstance(node, t.Duration):
        return _duration(node.micros)
    if isinstance(node, t.PeriodSpan):
        return f"{node.count} {node.period}"
    if isinstance(node, t.ListLit):
        return "[" + ", ".join(_render(i, OR) for i in node.items) + "]"
    if isinstance(node, t.Name):
        return ".".join([name(node.parts[0]), *(member(p) for p in node.parts[1:])])
    if isinstance(node, t.Logical):
        own = OR if node.op == "or" else AND
        text = f" {node.op} ".join(_render(o, own + 1) for o in node.operands)
        return _wrap(text, own, needed)
    if isinstance(node, t.Unary):
        if node.op == "not":
            return _wrap(f"not {_render(node.operand, NOT)}", NOT, needed)
        return _wrap(f"-{_render(node.operand, UNARY + 1)}", UNARY, needed)
    if isinstance(node, t.Binary):
        if node.op in _BINARY:
            own = _BINARY[node.op]
            text = f"{_render(node.left, own)} {node.op} {_render(node.right, own + 1)}"
            return _wrap(text, own, needed)
        text = f"{_render(node.left, ADD)} {node.op} {_render(node.right, ADD)}"
        return _wrap(text, COMPARE, needed)
    if isinstance(node, t.StringTest):
        text = f"{_render(node.left, ADD)} {node.op} {_render(node.right, ADD)}"
        return _wrap(text, COMPARE, needed)
    if isinstance(node, t.In):
        op = "not in" if node.negated else "in"
        text = f"{_render(node.value, ADD)} {op} {_render(node.options, ADD)}"
        return _wrap(text, COMPARE, needed)
    if isinstance(node, t.Between):
        op = "not between" if node.negated else "between"
        text = (
            f"{_render(node.value, ADD)} {op} {_render(node.low, ADD)} and "
            f"{_render(node.high, ADD)}"
        )
        return _wrap(text, COMPARE, needed)
    if isinstance(node, t.IsNull):
        text = f"{_render(node.value, ADD)} is {'not ' if node.negated else ''}null"
        return _wrap(text, COMPARE, needed)
    if isinstance(node, t.Call):
        return f"{name(node.name)}({_args(node)})"
    if isinstance(node, t.Method):
        return f"{_render(node.target, ATOM)}.{member(node.name)}({_args(node)})"
    if isinstance(node, t.Case):
        whens = " ".join(f"when {_render(c, OR)} then {_render(v, OR)}" for c, v in node.whens)
        default = f" else {_render(node.default, OR)}" if node.default is not None else ""
        return f"case {whens}{default} end"
    raise TypeError(f"cannot print {type(node).__name__}")
