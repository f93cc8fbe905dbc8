"""The streaming evaluator: bound trees compiled to Python closures.

A rule compiles to ``fn(ctx)`` where ``ctx`` (see `Context`) gives attribute values,
aggregate values, tags, scores and ``now``; an aggregate's ``where`` filter and value
compile to ``fn(event)``. The semantics, shared with the SQL evaluator (docs/rules.md):

- a comparison or arithmetic with null is null, and so is one between different types;
- ``and``/``or``/``not`` follow three-valued (Kleene) logic;
- ``x is null`` is never null; ``x in [..]`` is null if x is null, or if x is absent and
  the list holds a null;
- division and remainder by zero are null; ``%`` is the truncated remainder (as in SQL);
- a boolean tag is assigned only when its rule is exactly true.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import Any, Protocol

from tagloop.rules import bound as b
from tagloop.rules.functions import FUNCTIONS, kind_of
from tagloop.rules.jsfuncs import each
from tagloop.rules.jsvalues import to_json

Fn = Callable[[Any], Any]
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_NUMBER_TYPES = (int, float)


QUALIFIED = "\x1f"  # between a related entity's type and its tag name (flow conditions)


class Context(Protocol):
    """What a compiled rule reads while it runs (provided by the engine)."""

    now: int

    def attr(self, path: tuple[str, ...]) -> Any: ...

    def agg(self, node: b.Agg) -> Any: ...

    def streak(self, node: b.Streak, cond: Fn) -> int: ...

    def has_tag(self, name: str) -> bool: ...

    def tag_value(self, name: str) -> Any: ...

    def score(self, model: str) -> Any: ...

    def data(self) -> Any:
        """The whole data (JsonLogic's ``{"var": ""}``): the entity's attributes."""
        ...


class DictContext:
    """A context over a plain attribute dict (attribute-only rules, tests, docs).

    >>> from tagloop.rules.binder import Scope, bind
    >>> from tagloop.rules.parser import parse
    >>> rule = compile_stream(bind(parse("spend > 100 and city in ['上海', '北京']"),
    ...     Scope("customer", {"spend": "number", "city": "string"})))
    >>> rule(DictContext({"spend": 150, "city": "上海"})), rule(DictContext({"spend": 150}))
    (True, None)
    """

    def __init__(
        self, values: Mapping[str, Any] | Any, now: int = 0, tags: Mapping[str, Any] | None = None
    ) -> None:
        self.values = values
        self.now = now
        self.tags = tags or {}

    def attr(self, path: tuple[str, ...]) -> Any:
        # JsonLogic's data need not be an object: then it has no attributes
        return lookup(self.values, path) if isinstance(self.values, Mapping) else None

    def data(self) -> Any:
        return self.values

    def agg(self, node: b.Agg) -> Any:
        raise LookupError(f"no events in this context for {node.text}")

    def streak(self, node: b.Streak, cond: Fn) -> int:
        raise LookupError(f"no events in this context for {node.text}")

    def has_tag(self, name: str) -> bool:
        return name in self.tags

    def tag_value(self, name: str) -> Any:
        return self.tags.get(name)

    def score(self, model: str) -> Any:
        return None


def lookup(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = values.get(path[0])
    for part in path[1:]:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@cache
def parse_time(text: str) -> int | None:
    """An ISO 8601 time (as profiles store declared datetime fields) in epoch µs."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    from tagloop.timeutil import to_us

    return to_us(parsed)


def as_time(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        return parse_time(value)
    return None


def compile_stream(node: b.B, *, specialise: bool = True) -> Fn:
    """Compile a bound rule to ``fn(ctx)``.

    ``specialise=False`` compiles without the fast paths for common shapes; tests use it
    to prove that they mean exactly the same as the general closures.
    """
    return _Compiler(specialise, event=False).compile(node)


def compile_event(node: b.B) -> Fn:
    """Compile an aggregate's filter or value to ``fn(event)``."""
    return _Compiler(True, event=True).compile(node)


def _equals(a: Any, c: Any) -> bool | None:
    if a is None or c is None:
        return None
    return a == c if kind_of(a) is kind_of(c) else None


class _Compiler:
    def __init__(self, specialise: bool, event: bool) -> None:
        self.specialise = specialise
        self.event = event

    def compile(self, node: b.B) -> Fn:
        fn = self._raw(node)
        if node.type not in ("boolean", "string") and (
            isinstance(node, b.Each) or (isinstance(node, b.Func) and FUNCTIONS[node.name].js)
        ):
            # A JsonLogic value leaving JsonLogic is JSON: NaN and Infinity become null.
            raw = fn
            return lambda ctx: to_json(raw(ctx))
        return fn

    def _raw(self, node: b.B) -> Fn:
        method = getattr(self, f"_{type(node).__name__}")
        fn: Fn = method(node)
        return fn

    # -- leaves -----------------------------------------------------------------------
    def _Const(self, node: b.Const) -> Fn:
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        return lambda ctx: value

    def _Attr(self, node: b.Attr) -> Fn:
        path = node.path
        if node.type == "datetime":
            return lambda ctx: as_time(ctx.attr(path))
        return lambda ctx: ctx.attr(path)

    def _EventField(self, node: b.EventField) -> Fn:
        path = node.path
        if path == ("time",):
            return lambda event: event.time
        if path == ("type",):
            return lambda event: event.type
        if path == ("id",):
            return lambda event: event.id
        head, rest = path[0], path[1:]

        def field(event: Any) -> Any:
            value = event.properties.get(head)
            for part in rest:
                if not isinstance(value, Mapping):
                    return None
                value = value.get(part)
            return value

        if node.type == "datetime":
            return lambda event: as_time(field(event))
        return field

    def _Now(self, node: b.Now) -> Fn:
        return lambda ctx: ctx.now

    def _Agg(self, node: b.Agg) -> Fn:
        return lambda ctx: ctx.agg(node)

    def _TagRef(self, node: b.TagRef) -> Fn:
        # A related entity's tag (flow conditions) is asked for as "<type>\x1f<tag>": tag
        # names cannot hold control characters, so the key cannot be a tag's own name.
        name = node.name if node.on is None else f"{node.on}{QUALIFIED}{node.name}"
        if node.mode == "has":
            return lambda ctx: ctx.has_tag(name)
        if node.type == "datetime":  # valued tags hold times as text, as attributes do
            return lambda ctx: as_time(ctx.tag_value(name))
        return lambda ctx: ctx.tag_value(name)

    def _ScoreRef(self, node: b.ScoreRef) -> Fn:
        model = node.model
        return lambda ctx: ctx.score(model)

    def _Streak(self, node: b.Streak) -> Fn:
        cond = self.compile(node.cond)
        return lambda ctx: ctx.streak(node, cond)

    def _Func(self, node: b.Func) -> Fn:
        function = FUNCTIONS[node.name]
        call = function.call
        if function.js:
            # JavaScript values (NaN included) pass between JsonLogic's operators as they are.
            raw = [self._raw(a) for a in node.args]
            if function.lazy:
                return lambda ctx: call(ctx, raw)
            return lambda ctx: call(*[f(ctx) for f in raw])
        args = [self.compile(a) for a in node.args]
        if function.uses_now:
            if not args:
                return lambda ctx: call(ctx.now)
            (arg,) = args
            return lambda ctx: call(ctx.now, arg(ctx))
        if len(args) == 1:
            (arg,) = args
            return lambda ctx: call(arg(ctx))
        return lambda ctx: call(*(f(ctx) for f in args))

    # -- JsonLogic's data and scoped operators ----------------------------------------
    def _Data(self, node: b.Data) -> Fn:
        return lambda ctx: ctx.data()

    def _Item(self, node: b.Item) -> Fn:
        return lambda ctx: ctx.item

    def _Each(self, node: b.Each) -> Fn:
        items, body, op = self._raw(node.items), self._raw(node.body), node.op
        initial = self._raw(node.initial) if node.initial is not None else None

        def run(ctx: Any) -> Any:
            start = initial(ctx) if initial is not None else None
            return each(op, items(ctx), lambda item: body(_Scoped(ctx, item)), start)

        return run

    # -- operators --------------------------------------------------------------------
    def _Op(self, node: b.Op) -> Fn:
        op = node.op
        if op in ("and", "or"):
            return _logical(op, [self.compile(a) for a in node.args])
        if op == "case":
            return self._case(node)
        if op in ("==", "!=", "<", "<=", ">", ">=") and self.specialise:
            fast = _attribute_vs_literal(node)
            if fast is not None:
                return fast
        if op in ("in", "notin") and self.specialise:
            fast = _attribute_in_literals(node)
            if fast is not None:
                return fast
        args = [self.compile(a) for a in node.args]
        if op == "not":
            (inner,) = args
            return lambda ctx: None if (v := inner(ctx)) is None else not v
        if op == "neg":
            (inner,) = args
            return lambda ctx: -v if kind_of(v := inner(ctx)) is float else None
        if op in ("isnull", "notnull"):
            (inner,) = args
            if op == "isnull":
                return lambda ctx: inner(ctx) is None
            return lambda ctx: inner(ctx) is not None
        if op in ("between", "notbetween"):
            value, low, high = args
            both = _logical("and", [_binary(">=", value, low), _binary("<=", value, high)])
            if op == "between":
                return both
            return lambda ctx: None if (v := both(ctx)) is None else not v
        if op in ("in", "notin"):
            return _membership(args[0], args[1], op == "notin")
        if op in ("contains", "startswith", "endswith", "matches"):
            return _string_test(op, args[0], args[1])
        return _binary(op, args[0], args[1])

    def _case(self, node: b.Op) -> Fn:
        parts = [self.compile(a) for a in node.args]
        default = parts[-1]
        whens = list(zip(parts[:-1:2], parts[1:-1:2], strict=True))

        def choose(ctx: Any) -> Any:
            for cond, value in whens:
                if cond(ctx) is True:
                    return value(ctx)
            return default(ctx)

        return choose


class _Scoped:
    """The context of the body of JsonLogic's map/filter/...: its data is the current item;
    everything else (attributes, aggregates, now) is the enclosing context's."""

    __slots__ = ("item", "parent")

    def __init__(self, parent: Any, item: Any) -> None:
        self.parent = parent
        self.item = item

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parent, name)


# -- specialised closures for the shapes most rules are made of ---------------------------
# `spend >= 5000`, `city == '上海'`, `level in ['gold', 'platinum']` compile to one closure
# with the type test inlined; the semantics are exactly those of the general path.


def _attribute_vs_literal(node: b.Op) -> Fn | None:
    left, right = node.args
    if not (
        isinstance(left, b.Attr)
        and len(left.path) == 1
        and left.type != "datetime"
        and isinstance(right, b.Const)
    ):
        return None
    path, literal = left.path, right.value
    if node.op in _ORDER and type(literal) in _NUMBER_TYPES:
        cmp = _ORDER[node.op]

        def number_order(ctx: Any) -> bool | None:
            v = ctx.attr(path)
            return cmp(v, literal) if v.__class__ in _NUMBER_TYPES else None

        return number_order
    if node.op in ("==", "!=") and type(literal) is str:
        negate = node.op == "!="

        def string_equality(ctx: Any) -> bool | None:
            v = ctx.attr(path)
            if v.__class__ is not str:
                return None
            return (v != literal) if negate else (v == literal)

        return string_equality
    return None


def _attribute_in_literals(node: b.Op) -> Fn | None:
    value, options = node.args
    if not (
        isinstance(value, b.Attr)
        and len(value.path) == 1
        and isinstance(options, b.Const)
        and isinstance(options.value, tuple)
        and options.value
        and all(type(o) is str for o in options.value)
    ):
        return None
    path, negated = value.path, node.op == "notin"
    choices = frozenset(options.value)

    def member(ctx: Any) -> bool | None:
        v = ctx.attr(path)
        if v.__class__ is not str:
            return None  # null, or a non-string that equals no string option: unknown
        return (v not in choices) if negated else (v in choices)

    return member


def _logical(op: str, parts: list[Fn]) -> Fn:
    # Kleene logic: the dominant value (false for `and`, true for `or`) decides at once;
    # otherwise any unknown operand makes the whole unknown.
    dominant: bool = op != "and"
    neutral: bool = not dominant

    def combine(ctx: Any) -> bool | None:
        unknown = False
        for f in parts:
            v = f(ctx)
            if v is None:
                unknown = True
            elif v is dominant:
                return v is True  # v is the dominant value itself
        return None if unknown else neutral

    return combine


def _binary(op: str, left: Fn, right: Fn) -> Fn:
    if op == "==":
        return lambda ctx: _equals(left(ctx), right(ctx))
    if op == "!=":
        return lambda ctx: None if (eq := _equals(left(ctx), right(ctx))) is None else not eq
    if op in _ORDER:
        cmp = _ORDER[op]

        def ordered(ctx: Any) -> bool | None:
            a, c = left(ctx), right(ctx)
            if (
                a is None
                or c is None
                or kind_of(a) is not kind_of(c)
                or isinstance(a, bool | list | dict)
            ):
                return None
            return bool(cmp(a, c))

        return ordered
    return _arithmetic(op, left, right)


def _remainder(a: Any, c: Any) -> Any:
    # Truncated remainder (the sign of the dividend), as SQL's % computes it; the binder
    # allows whole numbers only.
    if not isinstance(a, int) or not isinstance(c, int):
        return None
    result = abs(a) % abs(c)
    return result if a >= 0 else -result


def _arithmetic(op: str, left: Fn, right: Fn) -> Fn:
    def apply(ctx: Any) -> Any:
        a, c = left(ctx), right(ctx)
        if op == "+" and isinstance(a, str) and isinstance(c, str):
            return a + c
        if kind_of(a) is not float or kind_of(c) is not float:
            return None
        if op == "+":
            return a + c
        if op == "-":
            return a - c
        if op == "*":
            return a * c
        if c == 0:  # division by zero is null, not an error: one bad row must not stop a run
            return None
        return a / c if op == "/" else _remainder(a, c)

    return apply


def _string_test(op: str, left: Fn, right: Fn) -> Fn:
    def test(ctx: Any) -> bool | None:
        a, c = left(ctx), right(ctx)
        if op == "contains" and isinstance(a, list):
            return None if c is None else any(_equals(x, c) for x in a)
        if not isinstance(a, str) or not isinstance(c, str):
            return None
        if op == "contains":
            return c in a
        if op == "startswith":
            return a.startswith(c)
        if op == "endswith":
            return a.endswith(c)
        return _regex(c).search(a) is not None

    return test


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _membership(value: Fn, options: Fn, negated: bool) -> Fn:
    # SQL semantics: x in (..) is null when x is null, or when x is absent and a null is listed.
    def member(ctx: Any) -> bool | None:
        v, opts = value(ctx), options(ctx)
        if v is None or not isinstance(opts, list | tuple):
            return None
        results = [_equals(v, o) for o in opts]
        if any(results):
            return not negated
        if any(r is None for r in results):
            return None
        return negated

    return member
