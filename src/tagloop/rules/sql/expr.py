"""Bound rule expressions compiled to SQL expressions (sqlglot nodes).

This mirrors `tagloop.rules.stream` node by node: a test runs random rules through both
and demands the same answer. A compiled value carries its static type; a value of type
``any`` (an undeclared property, a path into an object) carries one view per kind, so a
comparison reads it as the other operand's kind, as Python's kind check does, and a value
of another kind becomes NULL on both sides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlglot import exp

from tagloop.rules import bound as b
from tagloop.rules.functions import DAY_US, FUNCTIONS, HOUR_US
from tagloop.rules.sql.dialects import BOOLEAN, NUMBER, STRING, Dialect, case, lit


class Unsupported(Exception):
    """A construct the batch evaluator cannot express (the streaming one still can)."""


@dataclass
class V:
    """A compiled value: SQL for a static type, or for ``any`` a view per kind."""

    type: str
    sql: exp.Expr | None = None
    views: Callable[[str], exp.Expr] | None = None  # any: kind -> typed SQL
    kind: exp.Expr | None = None  # any: the runtime kind ('n', 's', 'b')
    json: exp.Expr | None = None  # any: the JSON text, to return it as it is

    def as_(self, want: str) -> exp.Expr:
        """This value as ``want`` (a static type); another kind gives NULL."""
        if self.type == "null":
            return exp.Null()
        if self.type != "any":
            assert self.sql is not None
            return self.sql
        assert self.views is not None
        return self.views(KIND_OF.get(want, NUMBER))


KIND_OF = {
    "integer": NUMBER,
    "number": NUMBER,
    "string": STRING,
    "date": STRING,
    "boolean": BOOLEAN,
    "datetime": NUMBER,
    "duration": NUMBER,
}
_COMPARE = {"==": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}


class Resolver(Protocol):
    """Where the leaves of an expression come from in the query being built."""

    def attr(self, node: b.Attr) -> V: ...

    def event_field(self, node: b.EventField) -> V: ...

    def agg(self, node: b.Agg) -> V: ...

    def streak(self, node: b.Streak) -> V: ...

    def tag(self, node: b.TagRef) -> V: ...

    def score(self, node: b.ScoreRef) -> V: ...

    def now(self) -> exp.Expr: ...


def json_value(
    dialect: Dialect,
    column: exp.Expr,
    path: tuple[str, ...],
    static: str,
    time_column: exp.Expr | None = None,
) -> V:
    """A value read from a JSON column at ``path``, as its static type says."""
    if static == "any" or static in ("object", "list"):
        return V(
            "any",
            views=lambda k: dialect.scalar(column, path, k),
            kind=dialect.kind(column, path),
            json=dialect.json(column, path),
        )
    if static == "datetime":
        return V(static, dialect.time_of_text(dialect.scalar(column, path, STRING)))
    sql = dialect.scalar(column, path, KIND_OF[static])
    if static == "integer" and not isinstance(dialect, _sqlite()):
        sql = exp.cast(sql, "BIGINT")
    return V(static, sql)


def _sqlite() -> type:
    from tagloop.rules.sql.dialects import SQLite

    return SQLite


class Compiler:
    def __init__(self, dialect: Dialect, resolver: Resolver) -> None:
        self.d = dialect
        self.r = resolver

    def compile(self, node: b.B) -> V:
        method = getattr(self, f"_{type(node).__name__}")
        result: V = method(node)
        return result

    def boolean(self, node: b.B) -> exp.Expr:
        return self.compile(node).as_("boolean")

    # -- leaves -----------------------------------------------------------------------
    def _Const(self, node: b.Const) -> V:
        if node.type == "list":
            raise Unsupported("a list value")  # lists appear only on the right of `in`
        return V(node.type, lit(node.value))

    def _Attr(self, node: b.Attr) -> V:
        return self.r.attr(node)

    def _EventField(self, node: b.EventField) -> V:
        return self.r.event_field(node)

    def _Now(self, node: b.Now) -> V:
        return V("datetime", self.r.now())

    def _Agg(self, node: b.Agg) -> V:
        return self.r.agg(node)

    def _Streak(self, node: b.Streak) -> V:
        return self.r.streak(node)

    def _TagRef(self, node: b.TagRef) -> V:
        return self.r.tag(node)

    def _ScoreRef(self, node: b.ScoreRef) -> V:
        return self.r.score(node)

    def _Each(self, node: b.Each) -> V:
        raise Unsupported(f"JsonLogic's '{node.op}' (a rule run over each item of a list)")

    def _Data(self, node: b.Data) -> V:
        raise Unsupported('JsonLogic\'s whole data ({"var": ""})')

    def _Item(self, node: b.Item) -> V:
        raise Unsupported("JsonLogic's item data (inside map/filter/...)")

    # -- operators --------------------------------------------------------------------
    def _Op(self, node: b.Op) -> V:
        op = node.op
        if op in ("and", "or"):
            parts = [self.boolean(a) for a in node.args]
            joined = parts[0]
            for part in parts[1:]:
                joined = (exp.And if op == "and" else exp.Or)(this=joined, expression=part)
            return V("boolean", exp.Paren(this=joined))
        if op == "not":
            return V("boolean", exp.Not(this=exp.Paren(this=self.boolean(node.args[0]))))
        if op == "neg":
            inner = self.compile(node.args[0])
            return V(node.type, exp.Neg(this=exp.Paren(this=inner.as_("number"))))
        if op in _COMPARE:
            return V(
                "boolean", self.compare(op, self.compile(node.args[0]), self.compile(node.args[1]))
            )
        if op in ("isnull", "notnull"):
            inner = self.compile(node.args[0])
            value = inner.kind if inner.type == "any" else inner.sql
            if inner.type == "any":
                value = exp.func("COALESCE", inner.json, exp.Null())  # JSON null is null
                value = exp.Paren(this=value)
            test: exp.Expr = exp.Is(this=value, expression=exp.Null())
            return V("boolean", test if op == "isnull" else exp.Not(this=test))
        if op in ("between", "notbetween"):
            subject, low, high = (self.compile(a) for a in node.args)
            both = exp.And(
                this=self.compare(">=", subject, low), expression=self.compare("<=", subject, high)
            )
            return V(
                "boolean",
                exp.Paren(this=both) if op == "between" else exp.Not(this=exp.Paren(this=both)),
            )
        if op in ("in", "notin"):
            return V("boolean", self.membership(node, op == "notin"))
        if op in ("contains", "startswith", "endswith", "matches"):
            return V("boolean", self.string_test(op, node))
        if op == "case":
            return self.case(node)
        return self.arithmetic(node)

    def compare(self, op: str, left: V, right: V) -> exp.Expr:
        target = _unify(left.type, right.type)
        builder = _COMPARE[op]
        if target == "any":
            return self._compare_any(op, left, right)
        if op not in ("==", "!=") and target == "boolean":
            return exp.Null()  # booleans have no order, as in Python
        a, c = left.as_(target), right.as_(target)
        if target in ("string", "date") and op not in ("==", "!="):
            a, c = self.d.order_text(a), self.d.order_text(c)
        return builder(this=a, expression=c)

    def _compare_any(self, op: str, left: V, right: V) -> exp.Expr:
        kinds = [NUMBER, STRING] if op not in ("==", "!=") else [NUMBER, STRING, BOOLEAN]
        lk = left.kind if left.type == "any" else lit(KIND_OF.get(left.type, NUMBER))
        whens = []
        for kind in kinds:
            a, c = left.as_(_TYPE_OF[kind]), right.as_(_TYPE_OF[kind])
            if kind == STRING and op not in ("==", "!="):
                a, c = self.d.order_text(a), self.d.order_text(c)
            whens.append(
                (exp.EQ(this=lk, expression=lit(kind)), _COMPARE[op](this=a, expression=c))
            )
        rk = right.kind if right.type == "any" else lit(KIND_OF.get(right.type, NUMBER))
        return case((exp.EQ(this=lk, expression=rk), case(*whens)))

    def membership(self, node: b.Op, negated: bool) -> exp.Expr:
        value, options = node.args
        if not isinstance(options, b.Const):
            raise Unsupported("'in' over a list that is not written out")
        compiled = self.compile(value)
        items = list(options.value)
        present = [i for i in items if i is not None]
        item_type = (
            {str: "string", bool: "boolean"}.get(type(present[0]), "number") if present else "null"
        )
        if not items:
            return case(
                (exp.Is(this=compiled.as_(item_type), expression=exp.Null()), exp.Null()),
                default=exp.false(),
            )
        target = compiled.as_(item_type if compiled.type == "any" else compiled.type)
        test = exp.In(this=target, expressions=[lit(i) for i in items])
        return exp.Not(this=exp.Paren(this=test)) if negated else test

    def string_test(self, op: str, node: b.Op) -> exp.Expr:
        left, right = (self.compile(a) for a in node.args)
        if op == "contains" and left.type == "list":
            raise Unsupported("'contains' over a list")
        a, c = left.as_("string"), right.as_("string")
        if op == "contains":
            return self.d.contains(a, c)
        if op == "matches":
            return self.d.regex(a, c)
        size = exp.Length(this=c)
        if op == "startswith":
            return exp.EQ(this=exp.Substring(this=a, start=lit(1), length=size), expression=c)
        whole = exp.Length(this=a)
        start = exp.Add(this=exp.Sub(this=whole, expression=size), expression=lit(1))
        return case(
            (
                exp.Or(
                    this=exp.Is(this=a, expression=exp.Null()),
                    expression=exp.Is(this=c, expression=exp.Null()),
                ),
                exp.Null(),
            ),
            (exp.LT(this=whole, expression=size), exp.false()),
            default=exp.EQ(this=exp.Substring(this=a, start=start), expression=c),
        )

    def case(self, node: b.Op) -> V:
        parts = list(node.args)
        default = self.compile(parts[-1])
        pairs = list(zip(parts[:-1:2], parts[1:-1:2], strict=True))
        target = node.type
        whens = [
            (
                exp.Is(this=exp.Paren(this=self.boolean(c)), expression=exp.true()),
                self.compile(v).as_(target),
            )
            for c, v in pairs
        ]
        return V(target, case(*whens, default=default.as_(target)))

    def arithmetic(self, node: b.Op) -> V:
        left, right = (self.compile(a) for a in node.args)
        op = node.op
        if node.type == "string":
            return V("string", exp.DPipe(this=left.as_("string"), expression=right.as_("string")))
        a, c = left.as_("number"), right.as_("number")
        if op == "+":
            return V(node.type, exp.Paren(this=exp.Add(this=a, expression=c)))
        if op == "-":
            return V(node.type, exp.Paren(this=exp.Sub(this=a, expression=c)))
        if op == "*":
            return V(node.type, exp.Paren(this=exp.Mul(this=a, expression=c)))
        if op == "/":
            return V("number", self.d.float_div(a, c))
        return V("integer", exp.Mod(this=a, expression=exp.func("NULLIF", c, lit(0))))

    # -- functions --------------------------------------------------------------------
    def _Func(self, node: b.Func) -> V:
        name = node.name
        if FUNCTIONS[name].js:  # JsonLogic's operators: JavaScript semantics
            from tagloop.rules.sql.jsexpr import JsCompiler  # it imports this module

            return JsCompiler(self).to_v(node)
        args = [self.compile(a) for a in node.args]
        if name == "now":
            return V("datetime", self.r.now())
        if name in ("days_since", "hours_since"):
            unit = DAY_US if name == "days_since" else HOUR_US
            elapsed = exp.Sub(this=self.r.now(), expression=args[0].as_("datetime"))
            return V("integer", self.floor_div(elapsed, unit))
        if name == "abs":
            return V(node.type, exp.Abs(this=args[0].as_("number")))
        if name == "round":
            digits = args[1].as_("number") if len(args) > 1 else lit(0)
            return V("number", self.d.round(args[0].as_("number"), digits))
        if name in ("lower", "upper"):
            fn = self.d.lower if name == "lower" else self.d.upper
            return V("string", fn(args[0].as_("string")))
        if name == "len":
            return V("integer", self.length(node.args[0], args[0]))
        if name == "coalesce":
            return V(node.type, exp.func("COALESCE", *(a.as_(node.type) for a in args)))
        # min/max: null if any argument is null, as on the streaming side
        values = [a.as_(node.type) for a in args]
        nulls = [exp.Is(this=v, expression=exp.Null()) for v in values]
        any_null: exp.Expr = nulls[0]
        for more in nulls[1:]:
            any_null = exp.Or(this=any_null, expression=more)
        picked = exp.Least if name == "min" else exp.Greatest
        if node.type == "string":
            values = [self.d.order_text(v) for v in values]
        return V(
            node.type,
            case((any_null, exp.Null()), default=picked(this=values[0], expressions=values[1:])),
        )

    def length(self, source: b.B, value: V) -> exp.Expr:
        if source.type == "string":
            return exp.Length(this=value.as_("string"))
        if isinstance(source, b.Attr) and source.type in ("list", "any", "object"):
            return self.r.attr_length(source)  # type: ignore[attr-defined,no-any-return]
        raise Unsupported(f"len() of {source.type}")

    def floor_div(self, value: exp.Expr, unit: int) -> exp.Expr:
        """Floor division by a positive unit, exact for negative values too."""
        negative = exp.LT(this=value, expression=lit(0))
        down = exp.Neg(
            this=self.d.int_div(
                exp.Paren(this=exp.Add(this=exp.Neg(this=value), expression=lit(unit - 1))),
                lit(unit),
            )
        )
        return case((negative, down), default=self.d.int_div(value, lit(unit)))


_TYPE_OF = {NUMBER: "number", STRING: "string", BOOLEAN: "boolean"}


def _unify(a: str, c: str) -> str:
    if a == c:
        return a
    if "any" in (a, c):
        other = c if a == "any" else a
        return "any" if other in ("any", "null") else other
    if a == "null":
        return c
    if c == "null":
        return a
    if {a, c} <= b.NUMERIC:
        return "number"
    return a
