"""JsonLogic's operators with JavaScript's semantics, as json-logic-js computes them.

A JsonLogic rule means what the reference implementation (json-logic-js) gives: loose
``==`` with JavaScript's coercions, ``[]`` false, ``+`` through ``parseFloat``, ``<``
ordering two strings by UTF-16 code units and anything else as numbers (null as 0); the
coercions are in `tagloop.rules.jsvalues`. The operators are registered in
`tagloop.rules.functions` as ``jl_*`` (`SPECS`); the SQL side is `tagloop.rules.sql.jsexpr`.
Where JavaScript would throw (``missing_some`` over ``null``) the result is null: one odd
entity must not stop a run.

>>> jl_add("1", 1), jl_mul("2"), jl_cat(None, 1.5, True), jl_in(1, ["1"]), jl_in(1, "x1")
(2.0, '2', '1.5true', False, True)
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from functools import reduce
from typing import Any, NamedTuple

from tagloop.rules.jsvalues import (
    NAN,
    UNDEFINED,
    compare,
    kind,
    less_equal,
    less_than,
    loose_equals,
    parse_float,
    strict_equals,
    to_number,
    to_string,
    truthy,
    utf16,
    utf16_length,
    var,
)

log = logging.getLogger("tagloop.rules.jsonlogic")


def _arg(args: tuple[Any, ...], i: int) -> Any:
    return args[i] if i < len(args) else UNDEFINED


def _between(test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def call(*args: Any) -> bool:
        a, b, c = _arg(args, 0), _arg(args, 1), _arg(args, 2)
        return test(a, b) if c is UNDEFINED else test(a, b) and test(b, c)

    return call


def _divide(x: float, y: float) -> float:
    if y == 0:
        if x == 0 or math.isnan(x):
            return NAN
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _remainder(x: float, y: float) -> float:
    if math.isnan(x) or math.isnan(y) or math.isinf(x) or y == 0:
        return NAN
    return x if math.isinf(y) or x == 0 else math.fmod(x, y)


def _to_integer(value: Any) -> float:
    number = to_number(value)
    return 0.0 if math.isnan(number) else number if math.isinf(number) else math.trunc(number)


def _substr(text: str, start: Any, length: Any) -> str:
    """``String.prototype.substr``, in UTF-16 code units as JavaScript counts them."""
    units = utf16(text)
    size = len(units) // 2
    first = _to_integer(start)
    first = int(min(max(size + first, 0) if first < 0 else first, size))
    count = size - first if length is UNDEFINED else _to_integer(length)
    count = int(min(max(count, 0), size - first))
    return units[2 * first : 2 * (first + count)].decode("utf-16-be", "surrogatepass")


def jl_substr(*args: Any) -> str:
    source, start, end = _arg(args, 0), _arg(args, 1), _arg(args, 2)
    text = to_string(source)
    if compare(end, 0) is True:  # a negative end counts from the end (PHP's behaviour)
        rest = _substr(text, start, UNDEFINED)
        tail = to_string(end) if kind(end) == "object" else end
        # `temp.length + end` is JavaScript's +: with a text it concatenates
        length = (
            f"{utf16_length(rest)}{tail}"
            if isinstance(tail, str)
            else (utf16_length(rest) + to_number(tail))
        )
        return _substr(rest, 0, length)
    return _substr(text, start, end)


def jl_in(*args: Any) -> bool:
    needle, haystack = _arg(args, 0), _arg(args, 1)
    if isinstance(haystack, str):
        return haystack != "" and to_string(needle) in haystack
    if isinstance(haystack, list):
        return any(strict_equals(needle, item) for item in haystack)
    return False  # no indexOf: false, as json-logic-js answers


def jl_missing(data: Any, *args: Any) -> list[Any]:
    keys = args[0] if args and isinstance(args[0], list) else list(args)
    missing = []
    for key in keys:
        # {"var": key}: a list key is [path, default]
        if isinstance(key, list):
            value = var(data, _arg(tuple(key), 0), _arg(tuple(key), 1))
        else:
            value = var(data, key)
        if value is None or (isinstance(value, str) and not value):
            missing.append(key)
    return missing


def jl_missing_some(data: Any, *args: Any) -> list[Any] | None:
    need, options = _arg(args, 0), _arg(args, 1)
    if options is None or options is UNDEFINED:
        return None  # JavaScript throws reading null.length
    are_missing = jl_missing(data, *(options if isinstance(options, list) else [options]))
    size = (
        len(options)
        if isinstance(options, list)
        else (utf16_length(options) if isinstance(options, str) else None)
    )
    if size is not None and less_equal(need, size - len(are_missing)):
        return []
    return are_missing


def jl_cat(*args: Any) -> str:
    return "".join("" if a is None else to_string(a) for a in args)  # join(): null is ''


def jl_var(data: Any, *args: Any) -> Any:
    return var(data, _arg(args, 0), _arg(args, 1))


def jl_add(*args: Any) -> float:
    return reduce(lambda a, b: parse_float(a) + parse_float(b), args, 0.0)


def jl_mul(*args: Any) -> Any:
    # reduce() without a start: one value comes back untouched, not even parsed
    return reduce(lambda a, b: parse_float(a) * parse_float(b), args)


def jl_sub(*args: Any) -> float:
    if len(args) < 2:
        return -to_number(_arg(args, 0))
    return to_number(args[0]) - to_number(args[1])


def _extreme(pick: Callable[[list[float]], float], empty: float) -> Callable[..., float]:
    def call(*args: Any) -> float:
        numbers = [to_number(a) for a in args]
        if any(math.isnan(n) for n in numbers):
            return NAN
        return pick(numbers) if numbers else empty

    return call


def jl_log(*args: Any) -> Any:
    value = _arg(args, 0)
    log.info("jsonlogic log: %r", value)
    return None if value is UNDEFINED else value


def jl_merge(*args: Any) -> list[Any]:
    merged: list[Any] = []
    for arg in args:
        merged.extend(arg) if isinstance(arg, list) else merged.append(arg)
    return merged


def jl_json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


# -- short-circuit operators: they receive the context and their arguments' closures -------
Fns = list[Callable[[Any], Any]]


def jl_if(ctx: Any, fns: Fns) -> Any:
    for i in range(0, len(fns) - 1, 2):
        if truthy(fns[i](ctx)):
            return fns[i + 1](ctx)
    return fns[-1](ctx) if len(fns) % 2 else None


def _logical(stop: bool) -> Callable[[Any, Fns], Any]:
    def call(ctx: Any, fns: Fns) -> Any:
        current = None
        for fn in fns:
            current = fn(ctx)
            if truthy(current) is stop:
                return current
        return current

    return call


def each(op: str, items: Any, run: Callable[[Any], Any], initial: Any = None) -> Any:
    """map/filter/reduce/all/some/none: ``run(item)`` evaluates the rule with the item as
    its data (for reduce ``{"current": item, "accumulator": value}``)."""
    if op == "reduce":
        if not isinstance(items, list):
            return initial
        return reduce(lambda acc, cur: run({"current": cur, "accumulator": acc}), items, initial)
    if not isinstance(items, list):
        return [] if op in ("map", "filter") else op == "none"
    if op == "map":
        return [run(item) for item in items]
    if op == "filter":
        return [item for item in items if truthy(run(item))]
    if op == "all":
        return bool(items) and all(truthy(run(item)) for item in items)
    found = any(truthy(run(item)) for item in items)
    return found if op == "some" else not found


# -- the function table ---------------------------------------------------------------------
class Spec(NamedTuple):
    name: str
    min_args: int
    max_args: int | None
    result: Callable[[list[str]], str]
    call: Callable[..., Any]
    lazy: bool = False
    description: str = ""


def _common(types: list[str]) -> str:
    """The type of a value that is one of ``types`` (and/or/if return an operand)."""
    result = "null"
    for t in types:
        if t in ("null", result):
            continue
        if result == "null":
            result = t
        elif {t, result} <= {"integer", "number"}:
            result = "number"
        else:
            return "any"
    return result


def _if_type(types: list[str]) -> str:
    return _common([*types[1::2], types[-1] if len(types) % 2 else "null"])


def _json_type(types: list[str]) -> str:
    if types[0] not in ("string", "any", "null"):
        raise ValueError("jl_json() takes JSON text")
    return "any"


def _mul_type(types: list[str]) -> str:
    return types[0] if len(types) == 1 else "number"  # one value comes back untouched


def _log_type(types: list[str]) -> str:
    return types[0] if types else "null"


def _fixed(kind_: str) -> Callable[[list[str]], str]:
    return lambda types: kind_


_B, _N, _S, _L, _A = (_fixed(k) for k in ("boolean", "number", "string", "list", "any"))


def _two(test: Callable[[Any, Any], bool], negate: bool = False) -> Callable[..., bool]:
    """A binary operator over its first two values (JavaScript ignores the others)."""
    return lambda *a: test(_arg(a, 0), _arg(a, 1)) is not negate


def _flipped(test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    return lambda *a: test(_arg(a, 1), _arg(a, 0))


def _numeric(op: Callable[[float, float], float]) -> Callable[..., float]:
    return lambda *a: op(to_number(_arg(a, 0)), to_number(_arg(a, 1)))


# name, fewest and most values, result type, implementation, lazy, what it is in JsonLogic
SPECS: tuple[Spec, ...] = tuple(Spec(*row) for row in (
    ("jl_eq", 0, None, _B, _two(loose_equals), False, "=="),
    ("jl_ne", 0, None, _B, _two(loose_equals, negate=True), False, "!="),
    ("jl_seq", 0, None, _B, _two(strict_equals), False, "==="),
    ("jl_sne", 0, None, _B, _two(strict_equals, negate=True), False, "!=="),
    ("jl_lt", 0, None, _B, _between(less_than), False, "< (with 3 values: between)"),
    ("jl_le", 0, None, _B, _between(less_equal), False, "<= (with 3 values: between)"),
    ("jl_gt", 0, None, _B, _flipped(less_than), False, ">"),
    ("jl_ge", 0, None, _B, _flipped(less_equal), False, ">="),
    ("jl_not", 0, None, _B, lambda *a: not truthy(_arg(a, 0)), False, "!"),
    ("jl_truthy", 0, None, _B, lambda *a: truthy(_arg(a, 0)), False, "!!"),
    ("jl_and", 0, None, _common, _logical(False), True, "and"),
    ("jl_or", 0, None, _common, _logical(True), True, "or"),
    ("jl_if", 0, None, _if_type, jl_if, True, "if, ?:"),
    ("jl_in", 0, None, _B, jl_in, False, "in (a list or a text)"),
    ("jl_cat", 0, None, _S, jl_cat, False, "cat"),
    ("jl_substr", 0, None, _S, jl_substr, False, "substr"),
    ("jl_add", 0, None, _N, jl_add, False, "+"),
    ("jl_sub", 0, None, _N, jl_sub, False, "-"),
    ("jl_mul", 1, None, _mul_type, jl_mul, False, "*"),
    ("jl_div", 0, None, _N, _numeric(_divide), False, "/"),
    ("jl_mod", 0, None, _N, _numeric(_remainder), False, "%"),
    ("jl_min", 0, None, _N, _extreme(min, math.inf), False, "min"),
    ("jl_max", 0, None, _N, _extreme(max, -math.inf), False, "max"),
    ("jl_merge", 0, None, _L, jl_merge, False, "merge"),
    ("jl_var", 1, None, _A, jl_var, False, "var: jl_var(jl_data(), path[, default])"),
    ("jl_missing", 1, None, _L, jl_missing, False, "missing: jl_missing(jl_data(), ...)"),
    ("jl_missing_some", 1, None, _L, jl_missing_some, False,
     "missing_some: jl_missing_some(jl_data(), count, keys)"),
    ("jl_log", 0, None, _log_type, jl_log, False, "log"),
    ("jl_array", 0, None, _L, lambda *a: list(a), False, "an array: its values"),
    ("jl_json", 1, 1, _json_type, jl_json, False, "a value written as JSON text"),
))  # fmt: skip

# The scoped operators (bound to `tagloop.rules.bound.Each`): name -> result type.
EACH: dict[str, str] = {
    "jl_map": "list",
    "jl_filter": "list",
    "jl_reduce": "any",
    "jl_all": "boolean",
    "jl_some": "boolean",
    "jl_none": "boolean",
}
