"""Random JsonLogic rules over the typed attributes of `tests.rules.jsonlogic_sql.SCOPE`:
the query-builder subset (all of it has an SQL form) and the subset's operators over any
operands (some have none)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

FIELDS = {"country": "s", "name": "s", "joined": "s", "spend": "n", "orders": "n", "vip": "b"}
TEXTS = st.sampled_from(["CN", "US", "", "0", "12", " 5 ", "1e2", "abc", "上海", "2024-01-01"])
NUMBERS = st.sampled_from([0, 1, -1, 3, 2.5, 100, 150, -7, 0.1, 1e20])
LITERALS = st.one_of(TEXTS, NUMBERS, st.booleans(), st.none())


def _var(kinds: str = "snb") -> st.SearchStrategy[Any]:
    return st.sampled_from([{"var": f} for f, k in FIELDS.items() if k in kinds])


def _typed_pair() -> st.SearchStrategy[list[Any]]:
    """A field and a literal a query builder would compare it with."""
    text = st.tuples(_var("s"), TEXTS)
    number = st.tuples(_var("n"), st.one_of(NUMBERS, TEXTS.filter(lambda s: s != "abc")))
    flag = st.tuples(_var("b"), st.one_of(st.booleans(), st.none(), NUMBERS))
    return st.one_of(text, number, flag).map(list)


def builder_rules() -> st.SearchStrategy[Any]:
    """The query-builder subset: all of it compiles to SQL."""
    ops = st.sampled_from(["==", "!=", "===", "!==", "<", "<=", ">", ">="])
    compare = st.tuples(ops, _typed_pair(), st.booleans()).map(
        lambda x: {x[0]: x[1] if x[2] or x[0] in ("<", "<=") else x[1][::-1]}
    )
    between = st.tuples(st.sampled_from(["<", "<="]), NUMBERS, _var("n"), NUMBERS).map(
        lambda x: {x[0]: [x[1], x[2], x[3]]}
    )
    member = st.tuples(_var("s"), st.lists(TEXTS, max_size=3)).map(lambda x: {"in": [x[0], x[1]]})
    contains = st.tuples(TEXTS, _var("s")).map(lambda x: {"in": [x[0], x[1]]})
    leaf = st.one_of(compare, between, member, contains)
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"and": xs}),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"or": xs}),
            inner.map(lambda x: {"!": x}),
            inner.map(lambda x: {"!!": [x]}),
        ),
        max_leaves=6,
    )


def any_rules() -> st.SearchStrategy[Any]:
    """Rules of the subset's operators over any operands: some have no SQL form."""
    leaf = st.one_of(LITERALS, _var())
    ops = st.sampled_from(
        [
            "==",
            "!=",
            "===",
            "!==",
            "<",
            "<=",
            ">",
            ">=",
            "and",
            "or",
            "!",
            "!!",
            "if",
            "+",
            "-",
            "*",
            "/",
            "%",
            "cat",
            "in",
            "min",
            "max",
        ]
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(ops, st.lists(inner, min_size=1, max_size=3)).map(lambda x: {x[0]: x[1]}),
            st.tuples(inner, st.lists(LITERALS, max_size=3)).map(lambda x: {"in": list(x)}),
        ),
        max_leaves=8,
    )
