"""JsonLogic (https://jsonlogic.com) as a second front end of the rule language.

A JsonLogic rule, as visual query builders export it, becomes a parse tree of the rule
language made of ``jl_*`` calls (`tagloop.rules.jsfuncs`), so it goes through the same
binder and both evaluators and means exactly what json-logic-js computes: JavaScript's
``==``, truthiness, coercions. Where a rule reads data:

- ``{"var": "a.b"}`` at the top becomes the name ``a.b``: a profile attribute, checked
  against the entity dictionary (a typo is an error, with a suggestion) and typed, so the
  batch evaluator reads it in SQL;
- a ``var`` with a default, a numeric index (``"items.0"``), ``length``, or a computed
  path reads the data itself, ``jl_var(jl_data(), path)``, as JavaScript does; ``{"var":
  ""}`` is ``jl_data()``, the whole data;
- inside map/filter/reduce/all/some/none the data is the current item, so every ``var``
  there reads ``jl_data()``, which the binder binds to the item;
- JsonLogic's operators see attributes as stored JSON (a declared time is its ISO text),
  while a bare ``var`` as the whole rule keeps its declared type (a valued tag's value).

The tree prints as rule text (`to_text`), and its spans point into that text, so errors
show a caret under it; `compile_jsonlogic` also names the JSON path of the faulty part.

>>> to_text({"and": [{"==": [{"var": "country"}, "CN"]}, {">": [{"var": "spend"}, 100]}]})
"jl_and(jl_eq(country, 'CN'), jl_gt(spend, 100))"
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tagloop.names import suggest
from tagloop.rules import printer
from tagloop.rules import tree as t
from tagloop.rules.errors import RuleError
from tagloop.rules.jsvalues import to_string

if TYPE_CHECKING:
    from tagloop.rules import CompiledRule
    from tagloop.rules.binder import Scope

_OPERATORS = {
    "==": "jl_eq", "===": "jl_seq", "!=": "jl_ne", "!==": "jl_sne", "<": "jl_lt",
    "<=": "jl_le", ">": "jl_gt", ">=": "jl_ge", "!": "jl_not", "!!": "jl_truthy",
    "and": "jl_and", "or": "jl_or", "if": "jl_if", "?:": "jl_if", "in": "jl_in",
    "cat": "jl_cat", "substr": "jl_substr", "+": "jl_add", "-": "jl_sub", "*": "jl_mul",
    "/": "jl_div", "%": "jl_mod", "min": "jl_min", "max": "jl_max", "merge": "jl_merge",
    "log": "jl_log",
}  # fmt: skip
_READS_DATA = {"missing": "jl_missing", "missing_some": "jl_missing_some"}
_SCOPED = {op: f"jl_{op}" for op in ("map", "filter", "reduce", "all", "some", "none")}
OPERATORS: tuple[str, ...] = tuple(sorted([*_OPERATORS, *_READS_DATA, *_SCOPED, "var"]))
_BOOLEAN = frozenset({
    "jl_eq", "jl_seq", "jl_ne", "jl_sne", "jl_lt", "jl_le", "jl_gt", "jl_ge", "jl_not",
    "jl_truthy", "jl_in", "jl_all", "jl_some", "jl_none",
})  # fmt: skip
_INDEX = re.compile(r"0|[1-9][0-9]*")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_UNPLACED = (0, 0)


def parse_jsonlogic(logic: Any, *, condition: bool = False) -> t.Node:
    """The parse tree of a JsonLogic rule (decoded JSON); ``condition`` makes it true or
    false by JsonLogic's truthiness, as a tag's condition must be.

    >>> tree = parse_jsonlogic({"in": [{"var": "city"}, ["上海", "北京"]]})
    >>> tree.name, tree.args[0].parts, printer.to_text(tree)
    ('jl_in', ('city',), "jl_in(city, jl_array('上海', '北京'))")
    >>> printer.to_text(parse_jsonlogic({"var": "tags"}, condition=True))
    'jl_truthy(tags)'
    """
    return _parse(logic, condition)[0]


def to_text(logic: Any, *, condition: bool = False) -> str:
    """A JsonLogic rule as rule-language text (it compiles to the same tree).

    >>> to_text({"<": [0, {"var": "items.0.qty"}, 10]})
    "jl_lt(0, jl_var(jl_data(), 'items.0.qty'), 10)"
    """
    return printer.to_text(parse_jsonlogic(logic, condition=condition))


def compile_jsonlogic(logic: Any, scope: Scope, *, want: str | None = "boolean") -> CompiledRule:
    """Compile a JsonLogic rule in ``scope``; with ``want="boolean"`` (a tag's condition) it
    holds when the rule's value is truthy. A `RuleError` names the JSON path at fault.

    >>> from tagloop.rules import DictContext, Scope
    >>> rule = compile_jsonlogic({"==": [{"var": "level"}, "2"]}, Scope("c", {"level": "integer"}))
    >>> rule.evaluate(DictContext({"level": 2})), rule.text
    (True, "jl_eq(level, '2')")
    >>> compile_jsonlogic({"var": "levle"}, Scope("c", {"level": "integer"}))
    Traceback (most recent call last):
    ...
    tagloop.rules.errors.RuleError: $: unknown attribute 'levle' of c (did you mean 'level'?)
    """
    from tagloop.rules import compile_tree  # tagloop.rules imports its front ends' users

    tree, paths = _parse(logic, condition=want == "boolean")
    text = printer.to_text(tree)
    try:
        return compile_tree(text, tree, scope, want=want)
    except RuleError as exc:
        # The innermost part of the JSON whose text holds the span at fault.
        around = [s for s in paths if s[0] <= exc.start and exc.end <= s[1]]
        where = paths[min(around, key=lambda s: s[1] - s[0])] if around else "$"
        raise RuleError(f"{where}: {exc.message}", exc.start, exc.end) from None


def _parse(logic: Any, condition: bool) -> tuple[t.Node, dict[tuple[int, int], str]]:
    builder = _Builder()
    tree = builder.build(logic, "$", scoped=False)
    if condition and not _is_boolean(tree):
        tree = t.Call("jl_truthy", (tree,), span=_UNPLACED)
    placed: dict[tuple[int, int], str] = {}
    tree, _ = _place(tree, 0, builder.paths, placed)
    return tree, placed


def _is_boolean(node: t.Node) -> bool:
    if isinstance(node, t.Literal):
        return isinstance(node.value, bool)
    if isinstance(node, t.Call) and node.name in ("jl_and", "jl_or"):
        return bool(node.args) and all(_is_boolean(a) for a in node.args)
    return isinstance(node, t.Call) and node.name in _BOOLEAN


_STEP = re.compile(r'\.([A-Za-z_$][A-Za-z0-9_$]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def error_path(message: str) -> tuple[tuple[str | int, ...], str]:
    """The JSON path a `compile_jsonlogic` error names, as keys, and the rest of it; so a
    caller that knows where the JSON came from (a YAML file) can point at the very line.

    >>> error_path('$.and[1]["=="]: unknown attribute')
    (('and', 1, '=='), 'unknown attribute')
    >>> error_path('no path here')
    ((), 'no path here')
    """
    head, sep, rest = message.partition(": ")
    if not sep or not head.startswith("$"):
        return (), message
    keys: list[str | int] = []
    at = 1
    while at < len(head):
        step = _STEP.match(head, at)
        if step is None:
            return (), message
        name, index, quoted = step.groups()
        keys.append(int(index) if index is not None else name or json.loads(quoted))
        at = step.end()
    return tuple(keys), rest


def _key(op: str) -> str:
    return f".{op}" if _IDENT.fullmatch(op) else f"[{json.dumps(op, ensure_ascii=False)}]"


class _Builder:
    def __init__(self) -> None:
        self.paths: dict[int, str] = {}  # id(node) -> the JSON path it was built from
        self.keep: list[t.Node] = []  # keeps those nodes alive, so their ids stay theirs

    def build(self, logic: Any, path: str, scoped: bool) -> t.Node:
        node = self._build(logic, path, scoped)
        self.paths.setdefault(id(node), path)
        self.keep.append(node)
        return node

    def _build(self, logic: Any, path: str, scoped: bool) -> t.Node:
        if isinstance(logic, list):  # an array is evaluated item by item
            items = [self.build(x, f"{path}[{i}]", scoped) for i, x in enumerate(logic)]
            return _call("jl_array", items)
        # Only an object with exactly one key is a rule (json-logic-js' is_logic); any
        # other object is data.
        if not isinstance(logic, dict) or len(logic) != 1:
            return self.literal(logic, path)
        ((op, values),) = logic.items()
        here = f"{path}{_key(str(op))}"
        listed = isinstance(values, list)
        raw = values if listed else [values]  # {"var": "x"} is {"var": ["x"]}

        def arg(i: int, scope: bool = scoped) -> t.Node:
            if i >= len(raw):  # JavaScript's undefined, which these operators treat as null
                return t.Literal(None, span=_UNPLACED)
            return self.build(raw[i], f"{here}[{i}]" if listed else here, scope)

        def args() -> list[t.Node]:
            return [arg(i) for i in range(len(raw))]

        if op == "var":
            return self._var(raw, args(), scoped)
        if op in _OPERATORS:
            if op == "*" and not raw:
                raise RuleError(f"{here}: '*' needs at least one value", 0)
            return _call(_OPERATORS[op], args())
        if op in _READS_DATA:
            return _call(_READS_DATA[op], [_data(), *args()])
        if op in _SCOPED:
            # The list is evaluated here, the rule per item; reduce's start value is
            # taken as written, unevaluated, as json-logic-js does.
            parts = [arg(0), arg(1, scope=True)]
            if op == "reduce":
                parts.append(self.literal(raw[2] if len(raw) > 2 else None, f"{here}[2]"))
            return _call(_SCOPED[op], parts)
        if op == "method":
            raise RuleError(f"{path}: 'method' calls JavaScript methods: not supported", 0)
        raise RuleError(f"{path}: unknown operator {op!r}" + suggest(str(op), OPERATORS), 0)

    def _var(self, raw: list[Any], built: list[t.Node], scoped: bool) -> t.Node:
        if not raw:
            return _data()
        first = raw[0]
        if isinstance(first, dict | list):  # a computed path
            return _call("jl_var", [_data(), *built])
        if first is None or first == "":
            return _data()  # the whole data, whatever the default
        path = to_string(first)
        parts = tuple(path.split("."))
        if (
            not scoped
            and len(raw) == 1
            and all(p and p != "length" and not _INDEX.fullmatch(p) for p in parts)
        ):
            return t.Name(parts, span=_UNPLACED)
        return _call("jl_var", [_data(), t.Literal(path, span=_UNPLACED), *built[1:]])

    def literal(self, value: Any, path: str) -> t.Node:
        """A value taken as written: a scalar, or JSON text for an object or a list."""
        if isinstance(value, float) and not math.isfinite(value):
            raise RuleError(f"{path}: {value} is not a JSON number", 0)
        if value is None or isinstance(value, bool | int | float | str):
            return t.Literal(value, span=_UNPLACED)
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise RuleError(f"{path}: not JSON ({exc})", 0) from None
        return _call("jl_json", [t.Literal(text, span=_UNPLACED)])


def _call(name: str, args: list[t.Node]) -> t.Call:
    return t.Call(name, tuple(args), span=_UNPLACED)


def _data() -> t.Call:
    return _call("jl_data", [])


def _place(
    node: t.Node, start: int, paths: dict[int, str], placed: dict[tuple[int, int], str]
) -> tuple[t.Node, int]:
    """``node`` with the spans its parts have in its printed text, from offset ``start``.

    The trees built here are calls, names and literals only, which print without
    parentheses: ``name(arg, arg)``, so each part's place is known as it is printed.
    """
    if isinstance(node, t.Call):
        head = printer.name(node.name)
        pos = start + len(head) + 1
        args = []
        for i, arg in enumerate(node.args):
            pos += 2 if i else 0
            moved, pos = _place(arg, pos, paths, placed)
            args.append(moved)
        end = pos + 1
        new: t.Node = t.Call(
            node.name, tuple(args), span=(start, end), name_span=(start, start + len(head))
        )
    else:
        end = start + len(printer.to_text(node))
        new = replace(node, span=(start, end))
    if id(node) in paths:
        placed.setdefault((start, end), paths[id(node)])
    return new, end
