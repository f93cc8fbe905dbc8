"""JsonLogic's ``jl_*`` functions in SQL, with JavaScript's semantics.

`tagloop.rules.jsfuncs` says what the functions compute; this module says it in SQL where
that is possible for the argument types at hand (over `tagloop.rules.sql.jsvalues`), and
raises `Unsupported` where it is not; the tag is then evaluated by the streaming
evaluator:

- operands need a declared scalar type (number, integer, string, date, boolean) or must be
  literals: on an undeclared (``any``) value JavaScript's coercions depend on its kind;
- a text that is not a literal is not read as a number, nor a number written as text;
- ``/`` and ``%`` need a literal divisor (JavaScript divides by zero into Infinity);
- map/filter/reduce/all/some/none, missing, missing_some, merge, substr, log, var with a
  default or a computed path, and list values (but for the right of ``in``) are not
  expressed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlglot import exp

from tagloop.rules import bound as b
from tagloop.rules import jsvalues as js
from tagloop.rules.functions import FUNCTIONS
from tagloop.rules.sql.dialects import case, lit
from tagloop.rules.sql.expr import Unsupported, V
from tagloop.rules.sql.jsvalues import (
    NULLISH,
    J,
    JsValues,
    all_of,
    boolean,
    constant,
    false_if_null,
)

if TYPE_CHECKING:
    from tagloop.rules.sql.expr import Compiler

_KINDS = {
    "integer": "number",
    "number": "number",
    "datetime": "number",
    "duration": "number",
    "string": "string",
    "date": "string",
    "boolean": "boolean",
    "null": "null",
}
_WHY = {
    "jl_var": "'var' with a default, a numeric index or a computed path",
    "jl_missing": "'missing' (it makes a list)",
    "jl_missing_some": "'missing_some' (it makes a list)",
    "jl_merge": "'merge' (it makes a list)",
    "jl_array": "a list value (a list is compiled only on the right of 'in')",
    "jl_json": "a literal JSON object or list",
    "jl_substr": "'substr' (it counts UTF-16 code units)",
    "jl_log": "'log' (it has a side effect)",
}


class JsCompiler(JsValues):
    """Compiles JsonLogic's operators; the rest of a rule goes to ``compiler``."""

    def __init__(self, compiler: Compiler) -> None:
        super().__init__(compiler.d)
        self.c = compiler

    def to_v(self, node: b.Func) -> V:
        """``node`` as a value for the rest of the query (NaN is null there)."""
        value = self.value(node)
        return V("null" if value.kind in NULLISH else value.kind, value.sql)

    # -- values -------------------------------------------------------------------------
    def value(self, node: b.B) -> J:
        if isinstance(node, b.Const):
            return constant(node.value)
        if isinstance(node, b.Func) and FUNCTIONS[node.name].js:
            function = FUNCTIONS[node.name]
            values = [a.value for a in node.args if isinstance(a, b.Const)]
            if (
                not function.lazy
                and node.name != "jl_log"  # its side effect belongs to run time
                and len(values) == len(node.args)
                and not any(isinstance(v, tuple) for v in values)
            ):
                try:  # a constant expression is computed here, exactly as the stream would
                    return replace(constant(function.call(*values)), text=node.text)
                except Unsupported:
                    pass  # not a scalar: compiled (or refused) below
            method = getattr(self, f"_{node.name}", None)
            if method is None:
                raise Unsupported(_WHY.get(node.name, node.name))
            result: J = method(node.args)
            return replace(result, text=node.text)
        compiled = self.c.compile(node)
        kind = _KINDS.get(compiled.type)
        if kind is None:
            raise Unsupported(
                f"{node.text or 'a value'} is {compiled.type}, not a declared "
                "scalar: JavaScript's coercions depend on its kind at run time"
            )
        return J(
            kind,
            compiled.as_(compiled.type),
            whole=compiled.type in ("integer", "datetime", "duration"),
            text=node.text,
        )

    def _arg(self, args: tuple[b.B, ...], i: int) -> J:
        return self.value(args[i]) if i < len(args) else constant(js.UNDEFINED)

    # -- truthiness ---------------------------------------------------------------------
    def truthy(self, node: b.B) -> exp.Expr:
        """JsonLogic's truthiness of ``node``: never NULL. and/or/if need no common type
        here: only the truth of the operand they return matters."""
        if isinstance(node, b.Func) and FUNCTIONS[node.name].js:
            args = node.args
            if node.name in ("jl_and", "jl_or"):
                return (
                    all_of([self.truthy(a) for a in args], node.name == "jl_and")
                    if args
                    else exp.false()
                )
            if node.name == "jl_if":
                pairs = [
                    (self.truthy(args[i]), self.truthy(args[i + 1]))
                    for i in range(0, len(args) - 1, 2)
                ]
                default = self.truthy(args[-1]) if len(args) % 2 else exp.false()
                return case(*pairs, default=default) if pairs else default
            if node.name in ("jl_not", "jl_truthy"):
                inner = self.truthy(args[0]) if args else exp.false()
                return exp.Not(this=exp.Paren(this=inner)) if node.name == "jl_not" else inner
            if node.name == "jl_array":
                return exp.true() if args else exp.false()
        return self.truthy_of(self.value(node))

    # -- the functions ------------------------------------------------------------------
    def _jl_eq(self, args: tuple[b.B, ...]) -> J:
        return boolean(self.equals(self._arg(args, 0), self._arg(args, 1), strict=False))

    def _jl_ne(self, args: tuple[b.B, ...]) -> J:
        return boolean(exp.Not(this=exp.Paren(this=self._jl_eq(args).sql)))

    def _jl_seq(self, args: tuple[b.B, ...]) -> J:
        return boolean(self.equals(self._arg(args, 0), self._arg(args, 1), strict=True))

    def _jl_sne(self, args: tuple[b.B, ...]) -> J:
        return boolean(exp.Not(this=exp.Paren(this=self._jl_seq(args).sql)))

    def _chain(self, args: tuple[b.B, ...], or_equal: bool) -> J:
        a, c = self._arg(args, 0), self._arg(args, 1)
        test = self.less(a, c, or_equal)
        if len(args) > 2:  # {"<": [a, b, c]}: a < b and b < c
            test = all_of([test, self.less(c, self._arg(args, 2), or_equal)], conj=True)
        return boolean(test)

    def _jl_lt(self, args: tuple[b.B, ...]) -> J:
        return self._chain(args, or_equal=False)

    def _jl_le(self, args: tuple[b.B, ...]) -> J:
        return self._chain(args, or_equal=True)

    def _jl_gt(self, args: tuple[b.B, ...]) -> J:
        return boolean(self.less(self._arg(args, 1), self._arg(args, 0), or_equal=False))

    def _jl_ge(self, args: tuple[b.B, ...]) -> J:
        return boolean(self.less(self._arg(args, 1), self._arg(args, 0), or_equal=True))

    def _jl_not(self, args: tuple[b.B, ...]) -> J:
        return boolean(exp.Not(this=exp.Paren(this=self._jl_truthy(args).sql)))

    def _jl_truthy(self, args: tuple[b.B, ...]) -> J:
        return boolean(self.truthy(args[0]) if args else exp.false())

    def _logical(self, args: tuple[b.B, ...], conj: bool) -> J:
        if not args:
            return constant(None)
        parts = [self.value(a) for a in args]
        if len(parts) == 1:
            return parts[0]
        if all(p.kind == "boolean" and not p.nullable for p in parts):
            return boolean(all_of([p.sql for p in parts], conj))
        # JavaScript returns the operand that decides: the first falsy one for `and`
        result = self.same_kind(parts)
        whens = []
        for part in parts[:-1]:
            truth = self.truthy_of(part)
            whens.append(
                (exp.Not(this=exp.Paren(this=truth)) if conj else truth, self.sql_of(part))
            )
        return replace(result, sql=case(*whens, default=self.sql_of(parts[-1])))

    def _jl_and(self, args: tuple[b.B, ...]) -> J:
        return self._logical(args, conj=True)

    def _jl_or(self, args: tuple[b.B, ...]) -> J:
        return self._logical(args, conj=False)

    def _jl_if(self, args: tuple[b.B, ...]) -> J:
        pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
        default = self.value(args[-1]) if len(args) % 2 else constant(None)
        if not pairs:
            return default
        values = [self.value(v) for _, v in pairs]
        result = self.same_kind([*values, default])
        whens = [(self.truthy(c), self.sql_of(v)) for (c, _), v in zip(pairs, values, strict=True)]
        return replace(result, sql=case(*whens, default=self.sql_of(default)))

    def _jl_in(self, args: tuple[b.B, ...]) -> J:
        if len(args) < 2:
            return boolean(exp.false())
        needle, haystack = self.value(args[0]), args[1]
        items: list[J] | None = None
        if isinstance(haystack, b.Func) and haystack.name == "jl_array":
            items = [self.value(i) for i in haystack.args]
        elif isinstance(haystack, b.Const) and isinstance(haystack.value, tuple):
            items = [constant(v) for v in haystack.value]
        if items is not None:  # Array.prototype.indexOf: strict equality
            return boolean(all_of([self.equals(needle, i, strict=True) for i in items], False))
        text = self.value(haystack)
        if text.kind != "string":
            return boolean(exp.false())  # no indexOf on null, numbers, booleans
        found = self.d.contains(text.sql, self.to_string(needle, null="null"))
        non_empty = exp.NEQ(this=text.sql, expression=lit(""))
        return boolean(false_if_null(exp.And(this=non_empty, expression=found)))

    def _jl_cat(self, args: tuple[b.B, ...]) -> J:
        parts = [self.to_string(self.value(a), null="") for a in args]
        joined = parts[0] if parts else lit("")
        for part in parts[1:]:
            joined = exp.DPipe(this=joined, expression=part)
        return J("string", joined, nullable=False)

    def _arithmetic(self, sql: exp.Expr, whole: bool = False) -> J:
        return J("number", exp.Paren(this=sql), nullable=False, nan=True, whole=whole)

    def _jl_add(self, args: tuple[b.B, ...]) -> J:
        total: exp.Expr = lit(0.0)
        for arg in args:
            total = exp.Add(this=total, expression=self.parse_float(self.value(arg)))
        return self._arithmetic(total)

    def _jl_mul(self, args: tuple[b.B, ...]) -> J:
        if len(args) == 1:
            return self.value(args[0])  # reduce() without a start returns it untouched
        product = self.parse_float(self.value(args[0]))
        for arg in args[1:]:
            product = exp.Mul(this=product, expression=self.parse_float(self.value(arg)))
        return self._arithmetic(product)

    def _jl_sub(self, args: tuple[b.B, ...]) -> J:
        first = self.to_number(self._arg(args, 0))
        if len(args) < 2:
            return self._arithmetic(exp.Neg(this=exp.Paren(this=first)))
        return self._arithmetic(exp.Sub(this=first, expression=self.to_number(self.value(args[1]))))

    def _divisor(self, args: tuple[b.B, ...], whole: bool) -> float:
        divisor = self._arg(args, 1)
        number = js.to_number(divisor.const) if divisor.known else math.nan
        if (
            not divisor.known
            or number == 0
            or math.isinf(number)
            or (whole and not number.is_integer())
        ):
            raise Unsupported(
                "dividing by a value that is not a literal number other than 0"
                + (" (a whole one for %)" if whole else "")
            )
        return number

    def _jl_div(self, args: tuple[b.B, ...]) -> J:
        divisor = self._divisor(args, whole=False)
        if math.isnan(divisor):
            return constant(math.nan)
        return self._arithmetic(
            exp.Div(
                this=self.to_number(self._arg(args, 0)),
                expression=lit(divisor),
                typed=False,
                safe=False,
            )
        )

    def _jl_mod(self, args: tuple[b.B, ...]) -> J:
        divisor = self._divisor(args, whole=True)
        dividend = self._arg(args, 0)
        if not (dividend.whole or dividend.kind in ("boolean", *NULLISH)) or dividend.nan:
            raise Unsupported("'%' of a value not known to be a whole number")
        # whole numbers: SQL's truncated remainder is JavaScript's
        remainder = exp.Mod(
            this=exp.cast(self.to_number(dividend), "BIGINT"), expression=lit(int(divisor))
        )
        return self._arithmetic(exp.cast(remainder, "DOUBLE"), whole=True)

    def _extreme(self, args: tuple[b.B, ...], builder: type[exp.Least] | type[exp.Greatest]) -> J:
        if not args:
            raise Unsupported("min/max of nothing (an infinite number)")
        numbers = [self.to_number(self.value(a)) for a in args]
        if len(numbers) == 1:
            return self._arithmetic(numbers[0])
        any_nan = all_of([exp.Is(this=n, expression=exp.Null()) for n in numbers], conj=False)
        picked = builder(this=numbers[0], expressions=numbers[1:])
        return self._arithmetic(case((any_nan, exp.Null()), default=picked))

    def _jl_min(self, args: tuple[b.B, ...]) -> J:
        return self._extreme(args, exp.Least)

    def _jl_max(self, args: tuple[b.B, ...]) -> J:
        return self._extreme(args, exp.Greatest)
