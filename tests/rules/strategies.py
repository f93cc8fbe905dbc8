"""Hypothesis strategies that write random rule text from the grammar."""

from __future__ import annotations

from hypothesis import strategies as st

NAMES = ["spend", "city", "客户等级", "orders", "vip", "`Customer ID`", "address.city"]
STRINGS = ["'上海'", '"x"', "'a\\'b'", "''"]
NUMBERS = ["0", "1", "1_000", "5e5", "2.5", "1e-3"]


@st.composite
def literals(draw: st.DrawFn) -> str:
    return draw(st.sampled_from([*NAMES, *STRINGS, *NUMBERS, "true", "false", "null"]))


def expressions(max_leaves: int = 12) -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        # Operands of comparison-level operators are parenthesised: comparisons do not
        # chain, so `a < b < c` is (rightly) a syntax error.
        binary = st.tuples(
            inner,
            st.sampled_from(
                [
                    "+",
                    "-",
                    "*",
                    "/",
                    "%",
                    "==",
                    "!=",
                    "<",
                    "<=",
                    ">",
                    ">=",
                    "and",
                    "or",
                    "contains",
                    "startswith",
                    "endswith",
                    "matches",
                ]
            ),
            inner,
        ).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})")
        return st.one_of(
            binary,
            inner.map(lambda e: f"({e})"),
            inner.map(lambda e: f"not {e}"),
            inner.map(lambda e: f"-({e})"),
            st.tuples(inner, st.booleans()).map(
                lambda t: f"({t[0]}) is {'not ' if t[1] else ''}null"
            ),
            st.tuples(inner, st.lists(inner, max_size=3), st.booleans()).map(
                lambda t: f"({t[0]}) {'not ' if t[2] else ''}in [{', '.join(t[1])}]"
            ),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]}) between ({t[1]}) and ({t[2]})"),
            st.tuples(
                st.sampled_from(["abs", "lower", "coalesce", "max"]),
                st.lists(inner, min_size=1, max_size=3),
            ).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(inner, inner, inner).map(
                lambda t: f"case when {t[0]} then {t[1]} else {t[2]} end"
            ),
            inner.map(lambda e: f"count(order where {e}, 30d)"),
            inner.map(lambda e: f"tags.contains({e})"),
        )

    return st.recursive(literals(), extend, max_leaves=max_leaves)
