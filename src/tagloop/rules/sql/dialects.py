"""What differs between the SQL engines the batch evaluator runs on, as small tables.

Everything portable (CASE, joins, window functions, CTEs, quoting) is left to sqlglot's
generators; a `Dialect` supplies only what sqlglot cannot know for us: how to read a JSON
value with its type (SQLite JSON text, PostgreSQL JSONB, DuckDB JSON), exact integer
division, string ordering by code point, regular expressions, time parsing and calendars.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from sqlglot import exp

# The kinds a JSON scalar can have, as both evaluators see them.
NUMBER, STRING, BOOLEAN = "n", "s", "b"


_OPERATORS = (exp.Binary, exp.Not, exp.Neg, exp.Collate, exp.Is, exp.In)


def parenthesize(tree: exp.Expr) -> exp.Expr:
    """Wrap every compound operand of an operator in parentheses.

    sqlglot generates exactly the tree it is given: ``Div(Sub(a, b), c)`` would print as
    ``a - b / c``. Building the tree without worrying about precedence and fixing it here,
    once, keeps the compilers simple and the SQL right.

    >>> parenthesize(exp.Div(this=exp.Sub(this=exp.column("a"), expression=exp.column("b")),
    ...              expression=exp.column("c"))).sql()
    '(a - b) / c'
    """
    for node in list(tree.walk()):
        if isinstance(node, _OPERATORS):
            for key in ("this", "expression"):
                child = node.args.get(key)
                if isinstance(child, _OPERATORS):
                    node.set(key, exp.Paren(this=child))
    return tree


def call(name: str, *args: exp.Expr) -> exp.Expr:
    """A function call written as given (sqlglot leaves unknown functions alone)."""
    return exp.Anonymous(this=name, expressions=list(args))


def lit(value: object) -> exp.Expr:
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        return exp.Literal.number(repr(value))
    return exp.Literal.string(str(value))


def case(*whens: tuple[exp.Expr, exp.Expr], default: exp.Expr | None = None) -> exp.Expr:
    return exp.Case(ifs=[exp.If(this=c, true=v) for c, v in whens], default=default)


@dataclass(frozen=True)
class Dialect(ABC):
    name: str  # sqlglot's dialect name
    group_first_rows = False  # see tagloop.rules.sql.query._first_rows

    def sql(self, node: exp.Expr) -> str:
        return parenthesize(node.copy()).sql(dialect=self.name)

    # -- JSON, read at a path of a JSON column --------------------------------------------
    @abstractmethod
    def kind(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        """``'n'``, ``'s'``, ``'b'`` for a number, string, boolean at ``path``; else NULL."""

    @abstractmethod
    def scalar(self, column: exp.Expr, path: tuple[str, ...], kind: str) -> exp.Expr:
        """The value at ``path`` as an SQL number/text/boolean; NULL if not of ``kind``."""

    @abstractmethod
    def json(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        """The JSON text of the value at ``path`` (decoded by Python when returned)."""

    @abstractmethod
    def array_length(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        """Length of a JSON array at ``path`` (NULL if not an array)."""

    @abstractmethod
    def time_of_text(self, text: exp.Expr) -> exp.Expr:
        """Epoch µs of a time stored as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""

    @abstractmethod
    def year_month(self, local_us: exp.Expr) -> tuple[exp.Expr, exp.Expr]:
        """(year, month) of a local time given as epoch µs."""

    # -- scalars ------------------------------------------------------------------------
    def int_div(self, a: exp.Expr, b: exp.Expr) -> exp.Expr:
        """Integer division truncating toward zero."""
        return exp.IntDiv(this=a, expression=b)

    def float_div(self, a: exp.Expr, b: exp.Expr) -> exp.Expr:
        return exp.Div(
            this=exp.cast(a, "DOUBLE"),
            expression=exp.func("NULLIF", b, lit(0)),
            typed=True,
            safe=False,
        )

    def trunc(self, value: exp.Expr) -> exp.Expr:
        return call("TRUNC", value)

    def order_text(self, value: exp.Expr) -> exp.Expr:
        """A text value as it must be ordered: by code point, as Python does."""
        return value

    def regex(self, value: exp.Expr, pattern: exp.Expr) -> exp.Expr:
        return exp.RegexpLike(this=value, expression=pattern)

    def lower(self, value: exp.Expr) -> exp.Expr:
        return exp.Lower(this=value)

    def upper(self, value: exp.Expr) -> exp.Expr:
        return exp.Upper(this=value)

    def contains(self, text: exp.Expr, part: exp.Expr) -> exp.Expr:
        return exp.GT(this=exp.StrPosition(this=text, substr=part), expression=lit(0))

    def round(self, value: exp.Expr, digits: exp.Expr) -> exp.Expr:
        """Round half away from zero (on the shortest decimal form, as Python's side does)."""
        return exp.cast(
            exp.Round(this=exp.cast(value, "DECIMAL(38, 12)"), decimals=digits), "DOUBLE"
        )


class SQLite(Dialect):
    group_first_rows = True

    # Read with one JSON parse: json_type/json_extract on the column and path together.
    @staticmethod
    def _path(path: tuple[str, ...]) -> exp.Expr:
        return lit("$" + "".join(f'."{p}"' for p in path))

    def kind(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        kind = call("json_type", column, self._path(path))
        return case(
            (kind.isin(lit("integer"), lit("real")), lit(NUMBER)),
            (kind.eq(lit("text")), lit(STRING)),
            (kind.isin(lit("true"), lit("false")), lit(BOOLEAN)),
        )

    def scalar(self, column: exp.Expr, path: tuple[str, ...], kind: str) -> exp.Expr:
        json_type = call("json_type", column, self._path(path))
        accepted = {NUMBER: ("integer", "real"), STRING: ("text",), BOOLEAN: ("true", "false")}[
            kind
        ]
        return case(
            (
                json_type.isin(*(lit(a) for a in accepted)),
                call("json_extract", column, self._path(path)),
            )
        )

    def json(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        return exp.JSONExtract(this=column, expression=self._path(path))

    def array_length(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        return case(
            (
                call("json_type", column, self._path(path)).eq(lit("array")),
                call("json_array_length", column, self._path(path)),
            )
        )

    def time_of_text(self, text: exp.Expr) -> exp.Expr:
        seconds = exp.cast(
            call("strftime", lit("%s"), exp.Substring(this=text, start=lit(1), length=lit(19))),
            "INTEGER",
        )
        micros = exp.cast(exp.Substring(this=text, start=lit(21), length=lit(6)), "INTEGER")
        return exp.Add(this=exp.Mul(this=seconds, expression=lit(1_000_000)), expression=micros)

    def year_month(self, local_us: exp.Expr) -> tuple[exp.Expr, exp.Expr]:
        seconds = self.int_div(local_us, lit(1_000_000))
        year, month = (
            exp.cast(call("strftime", lit(f), seconds, lit("unixepoch")), "INTEGER")
            for f in ("%Y", "%m")
        )
        return year, month

    def int_div(self, a: exp.Expr, b: exp.Expr) -> exp.Expr:
        return exp.Div(this=a, expression=b, typed=True, safe=False)

    def trunc(self, value: exp.Expr) -> exp.Expr:
        return exp.cast(value, "INTEGER")

    # Registered on every SQLite connection from Python (store/db.py), so the batch side
    # uses exactly the streaming side's regular expressions, case mapping and rounding.
    def regex(self, value: exp.Expr, pattern: exp.Expr) -> exp.Expr:
        return call("tl_regexp", pattern, value)

    def lower(self, value: exp.Expr) -> exp.Expr:
        return call("tl_lower", value)

    def upper(self, value: exp.Expr) -> exp.Expr:
        return call("tl_upper", value)

    def round(self, value: exp.Expr, digits: exp.Expr) -> exp.Expr:
        return call("tl_round", value, digits)

    def contains(self, text: exp.Expr, part: exp.Expr) -> exp.Expr:
        return exp.GT(this=call("instr", text, part), expression=lit(0))


class Postgres(Dialect):
    @staticmethod
    def _at(column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        """The JSON value at ``path`` (``jsonb_extract_path`` needs at least one key: the
        value of a whole column, an imported tag's, is the column)."""
        if not path:
            return column
        return call("jsonb_extract_path", column, *(lit(p) for p in path))

    @staticmethod
    def _text(column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        if not path:
            return exp.JSONBExtractScalar(this=column, expression=lit("{}"))
        return call("jsonb_extract_path_text", column, *(lit(p) for p in path))

    def kind(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        kind = call("jsonb_typeof", self._at(column, path))
        return case(
            (kind.eq(lit("number")), lit(NUMBER)),
            (kind.eq(lit("string")), lit(STRING)),
            (kind.eq(lit("boolean")), lit(BOOLEAN)),
        )

    def scalar(self, column: exp.Expr, path: tuple[str, ...], kind: str) -> exp.Expr:
        typeof = call("jsonb_typeof", self._at(column, path))
        text = self._text(column, path)
        value = {
            NUMBER: exp.cast(text, "DOUBLE"),
            STRING: text,
            BOOLEAN: exp.cast(text, "BOOLEAN"),
        }[kind]
        name = {NUMBER: "number", STRING: "string", BOOLEAN: "boolean"}[kind]
        return case((typeof.eq(lit(name)), value))

    def json(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        return exp.cast(self._at(column, path), "TEXT")

    def array_length(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        value = self._at(column, path)
        return case(
            (call("jsonb_typeof", value).eq(lit("array")), call("jsonb_array_length", value))
        )

    def time_of_text(self, text: exp.Expr) -> exp.Expr:
        epoch = exp.Extract(this=exp.var("EPOCH"), expression=exp.cast(text, "TIMESTAMPTZ"))
        return exp.cast(exp.Mul(this=epoch, expression=lit(1_000_000)), "BIGINT")

    def year_month(self, local_us: exp.Expr) -> tuple[exp.Expr, exp.Expr]:
        moment = call("to_timestamp", self.float_div(local_us, lit(1_000_000)))
        utc = exp.AtTimeZone(this=moment, zone=lit("UTC"))
        return (
            exp.cast(exp.Extract(this=exp.var("YEAR"), expression=utc), "INTEGER"),
            exp.cast(exp.Extract(this=exp.var("MONTH"), expression=utc), "INTEGER"),
        )

    def int_div(self, a: exp.Expr, b: exp.Expr) -> exp.Expr:
        return exp.cast(call("div", a, b), "BIGINT")

    def order_text(self, value: exp.Expr) -> exp.Expr:
        return exp.Collate(this=value, expression=exp.to_identifier("C", quoted=True))

    def regex(self, value: exp.Expr, pattern: exp.Expr) -> exp.Expr:
        return exp.RegexpLike(this=value, expression=pattern)


class DuckDB(Dialect):
    @staticmethod
    def _path(path: tuple[str, ...]) -> exp.Expr:
        return lit("$" + "".join(f'."{p}"' for p in path))

    def kind(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        kind = call("json_type", column, self._path(path))
        return case(
            (kind.isin(lit("UBIGINT"), lit("BIGINT"), lit("DOUBLE")), lit(NUMBER)),
            (kind.eq(lit("VARCHAR")), lit(STRING)),
            (kind.eq(lit("BOOLEAN")), lit(BOOLEAN)),
        )

    def scalar(self, column: exp.Expr, path: tuple[str, ...], kind: str) -> exp.Expr:
        value = call("json_extract", column, self._path(path))
        string = call("json_extract_string", column, self._path(path))
        typed = {
            NUMBER: exp.cast(value, "DOUBLE"),
            STRING: string,
            BOOLEAN: exp.cast(value, "BOOLEAN"),
        }[kind]
        return case((self.kind(column, path).eq(lit(kind)), typed))

    def json(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        return exp.cast(call("json_extract", column, self._path(path)), "TEXT")

    def array_length(self, column: exp.Expr, path: tuple[str, ...]) -> exp.Expr:
        return case(
            (
                call("json_type", column, self._path(path)).eq(lit("ARRAY")),
                call("json_array_length", column, self._path(path)),
            )
        )

    def time_of_text(self, text: exp.Expr) -> exp.Expr:
        return call("epoch_us", exp.cast(text, "TIMESTAMPTZ"))

    def year_month(self, local_us: exp.Expr) -> tuple[exp.Expr, exp.Expr]:
        moment = call("make_timestamp", local_us)
        return call("year", moment), call("month", moment)

    def regex(self, value: exp.Expr, pattern: exp.Expr) -> exp.Expr:
        return call("regexp_matches", value, pattern)


DIALECTS: dict[str, Dialect] = {
    "sqlite": SQLite("sqlite"),
    "postgresql": Postgres("postgres"),
    "duckdb": DuckDB("duckdb"),
}
