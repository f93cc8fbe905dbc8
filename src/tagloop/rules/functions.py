"""Scalar functions of the rule language: arity, result type, and streaming behaviour.

The SQL side of each function lives in `tagloop.rules.sql`; a test checks that both
tables name the same functions. Null in, null out, unless the function says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tagloop.rules import jsfuncs

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class Function:
    name: str
    min_args: int
    max_args: int | None  # None: any number
    # (argument types) -> result type, or raises ValueError with a message for users
    result: Callable[[list[str]], str]
    # evaluation over already evaluated arguments (and `now` for time functions)
    call: Callable[..., Any]
    uses_now: bool = False
    description: str = ""
    # JsonLogic's operators (tagloop.rules.jsfuncs): JavaScript semantics; `lazy` ones get
    # the context and their arguments' closures, to short-circuit as JavaScript does.
    js: bool = False
    lazy: bool = False


def kind_of(value: Any) -> type | None:
    """The kind of a value for comparisons: bool is an int subclass in Python, but the
    language keeps booleans and numbers apart.

    >>> kind_of(True), kind_of(1), kind_of(1.5), kind_of("a"), kind_of(None)
    (<class 'bool'>, <class 'float'>, <class 'float'>, <class 'str'>, None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return bool
    if isinstance(value, int | float):
        return float
    return type(value)


def _a(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def _numeric(types: list[str], name: str) -> str:
    for t in types:
        if t not in ("integer", "number", "any", "null"):
            raise ValueError(f"{name}() needs numbers, not {_a(t)}")
    return types[0] if types and types[0] in ("integer", "number") else "number"


def _unified(types: list[str], name: str) -> str:
    result = "null"
    for t in types:
        if result in ("null", "any"):
            result = t if t != "null" else result
        elif t in ("null", "any") or t == result:
            continue
        elif {result, t} <= {"integer", "number"}:
            result = "number"
        else:
            raise ValueError(f"{name}() arguments must have the same type ({result}, {t})")
    return result if result != "null" else "any"


def _string(types: list[str], name: str) -> str:
    if types[0] not in ("string", "any", "null"):
        raise ValueError(f"{name}() needs a string, not {_a(types[0])}")
    return "string"


def _time(types: list[str], name: str) -> str:
    if types[0] not in ("datetime", "any", "null"):
        raise ValueError(f"{name}() needs a time, not {_a(types[0])}")
    return "integer"


def _abs(x: Any) -> Any:
    return abs(x) if kind_of(x) is float else None


def _round(x: Any, digits: Any = 0) -> Any:
    # Half away from zero, as SQL databases round; Python's round() is half-to-even.
    if kind_of(x) is not float or kind_of(digits) is not float:
        return None
    quantum = Decimal(1).scaleb(-int(digits))
    return float(Decimal(repr(x)).quantize(quantum, rounding=ROUND_HALF_UP))


def _extreme(pick: Callable[..., Any]) -> Callable[..., Any]:
    def call(*values: Any) -> Any:
        if any(v is None for v in values):
            return None
        return pick(values) if len({kind_of(v) for v in values}) == 1 else None

    return call


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _lower(x: Any) -> Any:
    return x.lower() if isinstance(x, str) else None


def _upper(x: Any) -> Any:
    return x.upper() if isinstance(x, str) else None


def _len(x: Any) -> Any:
    return len(x) if isinstance(x, str | list | tuple | dict) else None


def _since(unit: int) -> Callable[[int, Any], Any]:
    def call(now: int, t: Any) -> Any:
        # Whole units elapsed: floor, so the value changes exactly at t + k units.
        return (now - t) // unit if isinstance(t, int) and not isinstance(t, bool) else None

    return call


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("abs", 1, 1, lambda t: _numeric(t, "abs"), _abs, description="absolute value"),
        Function(
            "round",
            1,
            2,
            lambda t: (_numeric(t, "round"), "number")[1],
            _round,
            description="round half away from zero to `digits` decimals",
        ),
        Function(
            "min",
            2,
            None,
            lambda t: _unified(t, "min"),
            _extreme(min),
            description="smallest argument (null if any is null)",
        ),
        Function(
            "max",
            2,
            None,
            lambda t: _unified(t, "max"),
            _extreme(max),
            description="largest argument (null if any is null)",
        ),
        Function(
            "coalesce",
            1,
            None,
            lambda t: _unified(t, "coalesce"),
            _coalesce,
            description="first argument that is not null",
        ),
        Function("lower", 1, 1, lambda t: _string(t, "lower"), _lower, description="lower case"),
        Function("upper", 1, 1, lambda t: _string(t, "upper"), _upper, description="upper case"),
        Function("len", 1, 1, lambda t: "integer", _len, description="length of a string or list"),
        Function(
            "now",
            0,
            0,
            lambda t: "datetime",
            lambda now: now,
            uses_now=True,
            description="the evaluation time",
        ),
        Function(
            "days_since",
            1,
            1,
            lambda t: _time(t, "days_since"),
            _since(DAY_US),
            uses_now=True,
            description="whole days from a time to now",
        ),
        Function(
            "hours_since",
            1,
            1,
            lambda t: _time(t, "hours_since"),
            _since(HOUR_US),
            uses_now=True,
            description="whole hours from a time to now",
        ),
    )
}

FUNCTIONS.update(
    (
        s.name,
        Function(
            s.name,
            s.min_args,
            s.max_args,
            s.result,
            s.call,
            description=s.description,
            js=True,
            lazy=s.lazy,
        ),
    )
    for s in jsfuncs.SPECS
)

AGGREGATES: dict[str, str] = {
    "count": "number of events",
    "sum": "sum of a property (0 over no events)",
    "avg": "average of a property",
    "min": "smallest value of a property",
    "max": "largest value of a property",
    "distinct": "number of distinct values of a property",
    "first": "the property of the earliest event",
    "last": "the property of the latest event",
    "top": "the most frequent value of a property (ties: the smallest value)",
}
