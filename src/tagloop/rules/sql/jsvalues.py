"""JavaScript values in SQL, for JsonLogic's operators (`tagloop.rules.sql.jsexpr`).

A value compiles to a `J`: its kind, its SQL, and what SQL's NULL means for it. For an
attribute NULL is JavaScript's null; for arithmetic it is NaN (SQLite has no NaN), which
the rule's JSON result turns into null, as the streaming side does. Conversions that SQL
cannot make exactly as JavaScript does raise `Unsupported`: a text that is not a literal
is never read as a number (JavaScript's number syntax is not SQL's), a number that is not
a literal is never written as text; literals are converted here, in Python, by
`tagloop.rules.jsvalues`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from tagloop.rules import jsvalues as js
from tagloop.rules.sql.dialects import Dialect, case, lit
from tagloop.rules.sql.expr import Unsupported

_UNKNOWN: Any = object()
_Order = type[exp.LT] | type[exp.LTE]
NULLISH = ("null", "undefined")
_NOT_A_LIST = "a list value (a list is compiled only on the right of 'in')"


@dataclass(frozen=True)
class J:
    """A JavaScript value in SQL."""

    kind: str  # number string boolean null undefined
    sql: exp.Expr
    nullable: bool = True  # SQL NULL can mean JavaScript's null here
    nan: bool = False  # (number) SQL NULL means NaN: arithmetic results
    whole: bool = False  # (number) known to be a whole number
    const: Any = _UNKNOWN  # the value, when known while compiling
    text: str = ""

    @property
    def known(self) -> bool:
        return self.const is not _UNKNOWN


def constant(value: Any) -> J:
    """A value known while compiling."""
    kind = js.kind(value)
    if kind in NULLISH:
        return J(kind, exp.Null(), const=value)
    if kind == "object":
        raise Unsupported(_NOT_A_LIST)
    if kind == "number":
        number = js.to_number(value)
        # An infinity has no portable SQL literal: as the rule's value it is JSON's null;
        # where it must be computed with, `double` and friends refuse it.
        return J(
            "number",
            _nan() if math.isinf(number) else _number(number),
            nullable=False,
            nan=math.isnan(number),
            whole=number.is_integer(),
            const=value,
        )
    return J(kind, lit(value), nullable=False, const=value)


def _nan() -> exp.Expr:
    return exp.cast(exp.Null(), "DOUBLE")  # typed: PostgreSQL cannot multiply unknowns


def _number(x: float) -> exp.Expr:
    if math.isnan(x):
        return _nan()
    if math.isinf(x):
        raise Unsupported("an infinite number")
    return lit(x)


def all_of(parts: list[exp.Expr], conj: bool) -> exp.Expr:
    if not parts:
        return exp.false() if not conj else exp.true()
    joined = parts[0]
    for part in parts[1:]:
        joined = (exp.And if conj else exp.Or)(this=joined, expression=part)
    return exp.Paren(this=joined)


def _coalesce(sql: exp.Expr, default: exp.Expr) -> exp.Expr:
    return exp.Coalesce(this=sql, expressions=[default])


def false_if_null(sql: exp.Expr) -> exp.Expr:
    return _coalesce(sql, exp.false())


def boolean(sql: exp.Expr) -> J:
    return J("boolean", sql, nullable=False)


class JsValues:
    """JavaScript's conversions, truthiness, equality and order over `J` values."""

    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect

    def double(self, value: J) -> exp.Expr:
        if value.known:
            return _number(js.to_number(value.const))
        return exp.cast(value.sql, "DOUBLE")

    def to_number(self, value: J) -> exp.Expr:
        """JavaScript's Number(value) as a DOUBLE; NULL is NaN."""
        if value.known:
            return _number(js.to_number(value.const))
        if value.kind == "number":
            number = self.double(value)
            return _coalesce(number, lit(0.0)) if value.nullable else number
        if value.kind == "boolean":
            return case((value.sql, lit(1.0)), default=lit(0.0))
        raise Unsupported(f"reading the text {value.text or ''} as a number as JavaScript does")

    def parse_float(self, value: J) -> exp.Expr:
        """JavaScript's parseFloat(value); NULL is NaN (as parseFloat(null) is)."""
        if value.known:
            return _number(js.parse_float(value.const))
        if value.kind == "number":
            return self.double(value)
        if value.kind == "boolean":
            return _nan()
        raise Unsupported(f"reading the text {value.text or ''} as a number as JavaScript does")

    def to_string(self, value: J, null: str) -> exp.Expr:
        """JavaScript's String(value), with null as ``null`` (``cat`` uses '')."""
        if value.known:
            return lit(null if value.const is None else js.to_string(value.const))
        if value.kind == "string":
            return _coalesce(value.sql, lit(null)) if value.nullable else value.sql
        if value.kind == "boolean":
            return case(
                (value.sql, lit("true")), (exp.Not(this=value.sql), lit("false")), default=lit(null)
            )
        raise Unsupported(f"writing the number {value.text or ''} as JavaScript does")

    def is_null(self, value: J) -> exp.Expr | None:
        """SQL that is true when the value is null; None when it never is."""
        if value.kind in NULLISH:
            return exp.true()
        if not value.nullable or value.nan:
            return None
        return exp.Is(this=value.sql, expression=exp.Null())

    def truthy_of(self, value: J) -> exp.Expr:
        if value.known:
            return exp.true() if js.truthy(value.const) else exp.false()
        if value.kind == "boolean":
            return false_if_null(value.sql) if value.nullable else value.sql
        if value.kind == "number":
            return false_if_null(exp.NEQ(this=value.sql, expression=lit(0)))
        if value.kind == "string":
            return false_if_null(exp.NEQ(this=value.sql, expression=lit("")))
        return exp.false()

    # -- equality and order -------------------------------------------------------------
    def equals(self, a: J, c: J, strict: bool) -> exp.Expr:
        """JavaScript's ``==`` (``===`` if strict): never NULL."""
        if a.known and c.known:
            same = js.strict_equals if strict else js.loose_equals
            return exp.true() if same(a.const, c.const) else exp.false()
        if a.kind in NULLISH or c.kind in NULLISH:
            nullish, other = (a, c) if a.kind in NULLISH else (c, a)
            if strict and nullish.kind == "undefined":
                return exp.false()  # a value is never undefined
            return self.is_null(other) or exp.false()
        na, nc = self.is_null(a), self.is_null(c)
        if a.kind == c.kind:
            x, y = (self.double(a), self.double(c)) if a.kind == "number" else (a.sql, c.sql)
            body = false_if_null(exp.EQ(this=x, expression=y))
        elif strict:
            body = exp.false()
        else:  # JavaScript compares a boolean or a text with a number as numbers
            body = false_if_null(exp.EQ(this=self.to_number(a), expression=self.to_number(c)))
        if na is None and nc is None:
            return body
        if (na is None or nc is None) and a.kind == c.kind:
            return body  # one side null: `=` is NULL, and so false, as JavaScript says
        if na is None or nc is None:
            only = na if na is not None else nc
            assert only is not None
            return case((only, exp.false()), default=body)
        return case((exp.Or(this=na, expression=nc), exp.And(this=na, expression=nc)), default=body)

    def less(self, a: J, c: J, or_equal: bool) -> exp.Expr:
        """JavaScript's ``a < c`` (``a <= c``): never NULL."""
        test = js.less_equal if or_equal else js.less_than
        if a.known and c.known:
            return exp.true() if test(a.const, c.const) else exp.false()
        if "undefined" in (a.kind, c.kind):
            return exp.false()  # Number(undefined) is NaN
        builder: _Order = exp.LTE if or_equal else exp.LT
        if a.kind == c.kind == "string":
            return self._text_order(a, c, builder, test)
        return false_if_null(builder(this=self.to_number(a), expression=self.to_number(c)))

    def _text_order(self, a: J, c: J, builder: _Order, test: Any) -> exp.Expr:
        # Two texts compare by UTF-16 code units; with null, as numbers (null as 0), which
        # needs the other text as a number: known only for a literal.
        if not (a.known or c.known):
            raise Unsupported("ordering two texts that are not literals")
        column, literal = (c, a) if a.known else (a, c)
        if any(ord(ch) >= 0xD800 for ch in literal.const):
            # Below U+D800 the order of UTF-16 units is the order of code points, SQL's.
            raise Unsupported("ordering texts by a literal holding characters from U+D800 on")
        order = builder(this=self.d.order_text(a.sql), expression=self.d.order_text(c.sql))
        if not column.nullable:
            return order
        when_null = test(a.const if a.known else None, c.const if c.known else None)
        return case((exp.Is(this=column.sql, expression=exp.Null()), lit(when_null)), default=order)

    def same_kind(self, parts: list[J]) -> J:
        """The value of an operand chosen at run time (and/or/if): they must be alike."""
        kinds = {p.kind for p in parts if p.kind not in NULLISH}
        if len(kinds) > 1:
            raise Unsupported(f"choosing between values of different types ({sorted(kinds)})")
        kind = kinds.pop() if kinds else "null"
        nan = any(p.nan for p in parts)
        if nan and any(p.kind in NULLISH or (p.nullable and not p.nan) for p in parts):
            raise Unsupported("choosing between a computed number and null")
        return J(
            kind,
            exp.Null(),
            nullable=any(p.nullable for p in parts),
            nan=nan,
            whole=all(p.whole for p in parts),
        )

    def sql_of(self, value: J) -> exp.Expr:
        return self.double(value) if value.kind == "number" else value.sql
