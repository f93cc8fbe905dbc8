"""The WHERE clause of a SQL rule, parsed by sqlglot and translated to rule-tree nodes.

sqlglot records positions only on identifiers and literals; the parser subclass below notes
the tokens each node was read from, so every translated node (and every error) carries a
span into the original SQL text. See `tagloop.rules.sqlrule` for the statements around it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import types
from bisect import bisect_left
from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

from sqlglot import Token, TokenType, exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, TokenError

from tagloop.names import suggest
from tagloop.rules import tree as t
from tagloop.rules.errors import RuleError

Span = tuple[int, int]


# -- sqlglot, with the source span of every node ------------------------------------------
_DIALECT = Dialect.get_or_raise("postgres")
_SPAN = "tagloop_span"


def _spanning(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``_parse_*`` method so the node it returns first remembers the tokens read.

    sqlglot records positions on identifiers and literals only; the innermost parse method
    that returns a node is the one that read it, so its first and last tokens bound it.
    """

    @functools.wraps(method)
    def parse(self: Any, *args: Any, **kwargs: Any) -> Any:
        first = self._index
        node = method(self, *args, **kwargs)
        if isinstance(node, exp.Expr) and _SPAN not in node.meta and self._index > first:
            node.meta[_SPAN] = (self._tokens[first].start, self._tokens[self._index - 1].end + 1)
        return node

    return parse


_BASE = _DIALECT.parser_class
_Parser: Any = type(
    "SpanParser",
    (_BASE,),
    {
        name: _spanning(getattr(_BASE, name))
        for name in dir(_BASE)
        if name.startswith("_parse_")
        and isinstance(inspect.getattr_static(_BASE, name), types.FunctionType)
    },
)
_COMPARE: dict[type[exp.Expr], str] = {
    exp.EQ: "==", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=",
    exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/", exp.Mod: "%",
}  # fmt: skip
_FUNCTIONS: dict[type[exp.Expr], tuple[str, tuple[str, ...]]] = {
    exp.Lower: ("lower", ("this",)),
    exp.Upper: ("upper", ("this",)),
    exp.Abs: ("abs", ("this",)),
    exp.Round: ("round", ("this", "decimals")),
    exp.Coalesce: ("coalesce", ("this", "expressions")),
    exp.Length: ("len", ("this",)),
    exp.CurrentTimestamp: ("now", ()),
}
_SQL_FUNCTIONS = ("lower", "upper", "abs", "round", "coalesce", "length", "now")
_CLAUSES = {"joins": "JOIN", "group": "GROUP BY", "order": "ORDER BY", "with_": "WITH"}
_ONE_RECORD = "a rule tests one record at a time"
_LEADS = {"joins": "rules select from one table", "group": _ONE_RECORD, "having": _ONE_RECORD}
_UNITS = {"microsecond": 1, "us": 1, "millisecond": 1_000, "ms": 1_000, "msec": 1_000,
          "second": 10**6, "sec": 10**6, "s": 10**6, "minute": 6 * 10**7, "min": 6 * 10**7,
          "m": 6 * 10**7, "hour": 36 * 10**8, "hr": 36 * 10**8, "h": 36 * 10**8,
          "day": 864 * 10**8, "d": 864 * 10**8, "week": 6048 * 10**8,
          "w": 6048 * 10**8}  # fmt: skip
_INTERVAL_PART = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*([a-z]+)", re.I)
_INTERVAL = re.compile(rf"(?:{_INTERVAL_PART.pattern})+\s*", re.I)
_REGEX_SPECIAL = frozenset(".^$*+?()[]{}|\\")


class WhereQuery:
    """One ``SELECT`` read by sqlglot; ``base`` is its offset in the text the user wrote."""

    def __init__(self, sql: str, base: int, qualifiers: tuple[str, ...] | None) -> None:
        self.sql, self.base = sql, base
        self.qualifiers = qualifiers  # table name and alias; None: take them from FROM
        try:
            self.tokens: list[Token] = _DIALECT.tokenize(sql)
        except TokenError as exc:  # the scanner has checked quotes and comments already
            start = max(base + (exc.start or 0), 0)
            raise RuleError("cannot read this SQL", start, base + len(sql)) from None
        self.starts = [tok.start for tok in self.tokens]

    def select(self) -> tuple[exp.Table, exp.Expr]:
        """The table and the WHERE condition, or a `RuleError` for anything else."""
        try:
            parser = _Parser(error_level=ErrorLevel.IMMEDIATE, dialect=_DIALECT)
            trees = [tree for tree in parser.parse(self.tokens, self.sql) if tree is not None]
        except ParseError as exc:
            raise self._syntax_error(exc) from None
        except SqlglotError as exc:
            raise self.error(f"cannot read this SQL: {exc}", None) from None
        shape = "rules are SELECT * FROM <table> WHERE <condition>"
        if len(trees) != 1 or not isinstance(trees[0], exp.Select):
            what = type(trees[0]).__name__.upper()  # UNION, EXCEPT, INTERSECT; or a 2nd query
            where = self._keyword(what) if len(trees) == 1 else self.span(trees[1])
            raise self.error(f"{shape}: {what} is not supported", where or self.span(trees[0]))
        select = trees[0]
        for key, value in select.args.items():
            if key in ("expressions", "from_", "where") or not value:
                continue
            clause = _CLAUSES.get(key, key.rstrip("_").upper())
            lead = _LEADS.get(key, shape)
            node = value[0] if isinstance(value, list) else value
            where = self._maybe_span(node) if isinstance(node, exp.Expr) else None
            raise self.error(f"{lead}: {clause} is not supported", where or self._keyword(clause))
        columns = select.expressions
        if len(columns) != 1 or not isinstance(columns[0], exp.Star):
            spans = [self.span(c) for c in columns] or [self.span(select)]
            raise self.error(
                "a rule selects whole records: write SELECT *", spans[0][:1] + spans[-1][1:]
            )
        from_ = select.args.get("from_")
        table = from_.this if isinstance(from_, exp.From) else None
        if table is None:
            end = self.span(select)[1]
            raise RuleError("a rule needs FROM <table> after SELECT *", end, end + 1)
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            raise self.error(
                "rules select from an entity type's table, as in FROM feedbacks", table
            )
        if any(value for key, value in table.args.items() if key not in ("this", "alias")):
            raise self.error(f"name the table alone, as in FROM {table.name}", table)
        if self.qualifiers is None:
            self.qualifiers = tuple(name for name in (table.name, table.alias) if name)
        where = select.args.get("where")
        if not isinstance(where, exp.Where):
            end = self.span(select)[1]
            raise RuleError(
                f"a rule needs a condition: WHERE ... after FROM {table.name}", end, end + 1
            )
        return table, where.this

    # -- positions ------------------------------------------------------------------------
    def _maybe_span(self, e: exp.Expr) -> Span | None:
        # Union of what the parser recorded for the node and all its descendants: a node
        # built by a method that started late (`x NOT IN ..` starts at NOT) still covers x.
        starts, ends = [], []
        for node in e.walk():
            meta = node.meta
            own = meta.get(_SPAN) or (("start" in meta) and (meta["start"], meta["end"] + 1))
            if own:
                starts.append(own[0])
                ends.append(own[1])
        return (min(starts) + self.base, max(ends) + self.base) if starts else None

    def span(self, e: exp.Expr) -> Span:
        return self._maybe_span(e) or (self.base, self.base + len(self.sql))

    def error(self, message: str, where: exp.Expr | Span | None) -> RuleError:
        span = self.span(where) if isinstance(where, exp.Expr) else where
        start, end = span or (self.base, self.base + len(self.sql))
        return RuleError(message, max(start, 0), max(end, 0))  # >= 0: see parse_sql_condition

    def _token(self, offset: int, shift: int = 0) -> Token | None:
        """The token starting at (or after) ``offset``, or ``shift`` tokens from it."""
        index = bisect_left(self.starts, offset - self.base) + shift
        return self.tokens[index] if 0 <= index < len(self.tokens) else None

    def _tok_span(self, tok: Token) -> Span:
        return tok.start + self.base, tok.end + 1 + self.base

    def _keyword(self, word: str) -> Span | None:
        first = word.split()[0]
        tok = next((tok for tok in self.tokens if tok.text.upper() == first), None)
        return self._tok_span(tok) if tok else None

    def _widen(self, span: Span, words: Collection[str], call: bool = False) -> Span:
        """``span`` with one of ``words`` right before it (CASE, INTERVAL); with ``call``, a
        function name and the parentheses around (sqlglot records some calls from their
        first argument on)."""
        prev, paren = self._token(span[0], -2 if call else -1), self._token(span[0], -1)
        if not prev or prev.text.upper() not in words:
            return span
        if call and not (paren and paren.token_type == TokenType.L_PAREN):
            return span
        nxt = self._token(span[1])
        close = call and nxt is not None and nxt.token_type == TokenType.R_PAREN
        return self._tok_span(prev)[0], self._tok_span(nxt)[1] if nxt and close else span[1]

    def _syntax_error(self, exc: ParseError) -> RuleError:
        info = exc.errors[0] if exc.errors else {}
        description = str(info.get("description") or exc)
        start, end = 0, len(self.sql)
        line, col = info.get("line"), info.get("col")
        if isinstance(line, int) and isinstance(col, int):
            # sqlglot reports the line and column of the last character of the token.
            offset = sum(len(x) + 1 for x in self.sql.split("\n")[: line - 1]) + col - 1
            tok = next((tok for tok in self.tokens if tok.start <= offset <= tok.end), None)
            start, end = (tok.start, tok.end + 1) if tok else (offset, offset + 1)
        word = self.sql[start:end]
        if description.startswith("Required keyword"):
            message = f"{word!r} needs a value after it"
        elif description == "Expecting )":
            message = "expected ')' to close '('"
        elif description.startswith("Invalid expression / Unexpected token"):
            message = f"unexpected {word!r}"
        else:
            message = description.replace("Expecting", "expected").rstrip(".")
        return self.error(message, (start + self.base, end + self.base))

    # -- translation --------------------------------------------------------------------
    def node(self, e: exp.Expr) -> t.Node:
        """The rule tree of a SQL expression."""
        span = self.span(e)
        if isinstance(e, exp.Paren):
            return self.node(e.this)
        if isinstance(e, exp.And | exp.Or):
            operands = tuple(self.node(o) for o in _chain(e))
            op = "and" if isinstance(e, exp.And) else "or"
            return t.Logical(op, operands, span=(operands[0].span[0], operands[-1].span[1]))
        if type(e) in _COMPARE:
            return t.Binary(
                _COMPARE[type(e)], self.node(e.this), self.node(e.expression), span=span
            )
        if isinstance(e, exp.Not):
            inner = self.node(e.this)
            if isinstance(inner, t.In | t.Between | t.IsNull) and not isinstance(e.this, exp.Paren):
                return _negate(inner, span)
            return t.Unary("not", inner, span=span)
        if isinstance(e, exp.Neg):
            operand = self.node(e.this)
            if isinstance(operand, t.Literal) and type(operand.value) in (int, float):
                return t.Literal(-operand.value, span=span)  # as the rule parser folds -5
            return t.Unary("-", operand, span=span)
        if isinstance(e, exp.Column | exp.Dot):
            return self._name(e, span)
        if isinstance(e, exp.Boolean | exp.Null):
            return t.Literal(e.this if isinstance(e, exp.Boolean) else None, span=span)
        if isinstance(e, exp.Literal | exp.RawString | exp.ByteString):
            if isinstance(e, exp.Literal) and not e.is_string:
                return t.Literal(self._number(e.this, span), span=span)
            return t.Literal(str(e.this), span=span)
        if isinstance(e, exp.Cast):
            if _is_string(e.this) and e.to.is_type("timestamp", "timestamptz", "date"):
                return t.Literal(e.this.this, span=span)  # the binder reads it as a time
            raise self.error("casts are not supported: the dictionary types each attribute", e)
        if isinstance(e, exp.Is):
            if not isinstance(e.expression, exp.Null):
                value = e.expression.sql().upper()
                raise self.error(f"IS {value} is not supported: compare with = {value}", e)
            return t.IsNull(self.node(e.this), bool(e.args.get("negate")), span=span)
        if isinstance(e, exp.In):
            if e.args.get("query") or e.args.get("unnest") or e.args.get("field"):
                raise self.error("subqueries are not supported: list the values, IN (1, 2)", e)
            items = tuple(self.node(i) for i in e.expressions)
            around = (items[0].span[0], items[-1].span[1]) if items else span
            return t.In(self.node(e.this), t.ListLit(items, span=around), span=span)
        if isinstance(e, exp.Between):
            if e.args.get("symmetric"):
                raise self.error("BETWEEN SYMMETRIC is not supported", e)
            low, high = self.node(e.args["low"]), self.node(e.args["high"])
            return t.Between(self.node(e.this), low, high, span=span)
        if isinstance(e, exp.Like | exp.ILike | exp.Escape):
            return self._like(e, span)
        if isinstance(e, exp.RegexpLike) and len([v for v in e.args.values() if v]) == 2:
            return t.StringTest("matches", self.node(e.this), self.node(e.expression), span=span)
        if isinstance(e, exp.Interval):
            return self._interval(e, self._widen(span, ["INTERVAL"]))
        if isinstance(e, exp.Case):
            return self._case(e, self._widen(span, ["CASE"]))
        return self._call(e, span)

    def _name(self, e: exp.Column | exp.Dot, span: Span) -> t.Node:
        if not all(isinstance(part, exp.Identifier) for part in e.parts):
            raise self.error("'*' belongs in SELECT *, not in a condition", e)
        names = [part.name for part in e.parts]
        if len(names) > 1 and names[0] in (self.qualifiers or ()):
            names = names[1:]  # feedbacks.severity_score: a column of the rule's own table
        if any(not name or "`" in name for name in names):
            raise self.error("a name cannot be empty or hold a back-quote (`)", e)
        return t.Name(tuple(names), span=span)

    def _number(self, text: str, span: Span) -> int | float:
        try:
            value: int | float = int(text) if text.isdigit() else float(text)
        except ValueError:
            value = math.nan
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"{text!r} is not a number a rule can use", span)
        return value

    def _like(self, e: exp.Expr, span: Span) -> t.Node:
        escape = "\\"  # PostgreSQL's default LIKE escape character
        if isinstance(e, exp.Escape):
            if not _is_string(e.expression) or len(e.expression.this) > 1:
                raise self.error("ESCAPE takes one character, as in ESCAPE '!'", e.expression)
            escape, e = e.expression.this, e.this
        if not isinstance(e, exp.Like | exp.ILike) or not _is_string(e.expression):
            raise self.error("LIKE needs its pattern as a string, as in LIKE '高端%'", e)
        value, where = self.node(e.this), self.span(e.expression)
        parts: list[tuple[str, str]] = []  # ("%", ""), ("_", "") or ("", a literal character)
        chars = iter(e.expression.this)
        for ch in chars:
            if ch == escape:
                if not (ch := next(chars, "")):
                    raise self.error("a LIKE pattern cannot end with its escape character", where)
                parts.append(("", ch))
            elif ch in "%_" and not (ch == "%" and parts[-1:] == [("%", "")]):
                parts.append((ch, ""))
            elif ch not in "%_":
                parts.append(("", ch))
        lead = parts[:1] == [("%", "")]
        trail = len(parts) > lead and parts[-1] == ("%", "")
        core = parts[lead : len(parts) - trail]
        node: t.Node
        if all(not kind for kind, _ in core):  # only % at the ends: a plain text test
            text = "".join(ch for _, ch in core)
            if isinstance(e, exp.ILike):
                value = t.Call("lower", (value,), name_span=value.span, span=value.span)
                text = text.lower()
            op = ("==", "startswith", "endswith", "contains")[lead * 2 + trail]
            kind = t.Binary if op == "==" else t.StringTest
            node = kind(op, value, t.Literal(text, span=where), span=span)
        else:
            # (?s): '_' and '%' match newlines too. Only constructs that Python, PostgreSQL
            # and DuckDB read alike, as the batch evaluator hands the pattern to the database.
            body = "".join(
                ".*" if k == "%" else "." if k == "_" else "\\" * (c in _REGEX_SPECIAL) + c
                for k, c in core
            )
            flags = "(?is)" if isinstance(e, exp.ILike) else "(?s)"
            regex = f"{flags}{'' if lead else '^'}{body}{'' if trail else '$'}"
            node = t.StringTest("matches", value, t.Literal(regex, span=where), span=span)
        return t.Unary("not", node, span=span) if e.args.get("negate") else node

    def _interval(self, e: exp.Interval, span: Span) -> t.Node:
        value, unit = e.this, e.args.get("unit")
        text = ""
        if isinstance(value, exp.Literal) and (unit is None or isinstance(unit, exp.Var)):
            text = f"{value.this} {unit.name if unit else ''}"
        if not _INTERVAL.fullmatch(text):
            raise self.error(
                "write an interval as a number and a unit: INTERVAL '90 minutes'", span
            )
        micros = Decimal(0)
        for number, word in _INTERVAL_PART.findall(text):
            word = word.lower()
            size = _UNITS.get(word) or _UNITS.get(word.removesuffix("s"))
            if size is None:
                raise self.error(
                    "months and years have no fixed length: use days (INTERVAL '30 days')"
                    if word.startswith(("mon", "y", "q", "dec", "cent", "mil"))
                    else f"unknown interval unit {word!r}: use seconds, minutes, hours, days "
                    "or weeks",
                    span,
                )
            micros += Decimal(number) * size
        if micros % 1000:
            raise self.error("an interval must be a whole number of milliseconds", span)
        duration = t.Duration(abs(int(micros)), span=span)
        return t.Unary("-", duration, span=span) if micros < 0 else duration

    def _case(self, e: exp.Case, span: Span) -> t.Node:
        subject = self.node(e.this) if isinstance(e.this, exp.Expr) else None
        whens: list[tuple[t.Node, t.Node]] = []
        for branch in e.args.get("ifs") or []:
            cond = self.node(branch.this)
            if subject is not None:  # CASE x WHEN 1 THEN ..: when x == 1
                cond = t.Binary("==", subject, cond, span=cond.span)
            whens.append((cond, self.node(branch.args["true"])))
        if not whens:
            raise self.error("CASE needs at least one WHEN .. THEN ..", span)
        default = e.args.get("default")
        return t.Case(tuple(whens), self.node(default) if default else None, span=span)

    def _call(self, e: exp.Expr, span: Span) -> t.Node:
        if isinstance(e, exp.Func):
            span = self._widen(span, type(e).sql_names(), call=True)
        word = self.sql[span[0] - self.base : span[1] - self.base].split("(")[0].strip()
        tok = self._token(span[0])
        name_span = self._tok_span(tok) if tok else span
        known = ", ".join(_SQL_FUNCTIONS)
        if isinstance(e, exp.Window):
            raise self.error("window functions (OVER) are not supported in rules", span)
        if isinstance(e, exp.AggFunc):
            raise self.error(
                f"{word}() is an aggregate: a rule tests one record at a time, so it cannot be "
                "used in WHERE",
                span,
            )
        if isinstance(e, exp.Subquery | exp.Exists | exp.Query):
            raise self.error("subqueries are not supported: a rule reads one record", span)
        if isinstance(e, exp.Placeholder | exp.Parameter):
            where = self._widen(span, ["$"])
            raise self.error("parameters are not supported: write the value itself", where)
        if type(e) in _FUNCTIONS:
            name, keys = _FUNCTIONS[type(e)]
            extra = [v for k, v in e.args.items() if k not in keys and isinstance(v, exp.Expr)]
            if extra:
                raise self.error(f"{word}() takes no such argument in a rule", extra[0])
            values = [e.args.get(key) for key in keys]
            args = [a for v in values for a in (v if isinstance(v, list) else [v]) if a]
            return t.Call(name, tuple(self.node(a) for a in args), name_span=name_span, span=span)
        if isinstance(e, exp.Anonymous):
            hint = suggest(e.name.lower(), _SQL_FUNCTIONS)
            raise self.error(f"unknown function {e.name!r}{hint}; rules know {known}", name_span)
        if isinstance(e, exp.Func):
            raise self.error(f"{word}() is not supported in rules; they know {known}", span)
        text = self.sql[max(span[0] - self.base, 0) : span[1] - self.base]
        raise self.error(f"{text!r} is not supported in rules", span)


def _chain(e: exp.Expr) -> list[exp.Expr]:
    """The operands of a left-nested AND (or OR) chain; parenthesised groups stay whole."""
    operands, stack = [], [e]
    while stack:
        node = stack.pop()
        if type(node) is type(e):
            stack += [node.expression, node.this]
        else:
            operands.append(node)
    return operands


def _negate(node: t.In | t.Between | t.IsNull, span: Span) -> t.Node:
    return dataclasses.replace(node, negated=not node.negated, span=span)


def _is_string(e: Any) -> bool:
    return isinstance(e, exp.Literal) and bool(e.is_string)
