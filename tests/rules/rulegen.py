"""Random, well-typed rules and events over a fixed schema, for the equivalence test."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from tagloop.timeutil import to_us

TZ = ZoneInfo("Asia/Shanghai")
T0 = to_us(datetime(2024, 1, 1), TZ)
DAY = 86_400_000_000
SPAN = 150  # days of events
NOW_RANGE = (60, 170)  # days after T0 at which rules are evaluated

ENTITIES = """
entities:
  - name: customer
    fields:
      country: string
      spend: number
      level: integer
      vip: boolean
      signup: datetime
      joined: date
      profile: object
    events:
      order:
        properties: {amount: number, category: string, qty: integer, channel: any}
      visit: {}
      feedback:
        properties: {score: integer}
  - name: product_batch
    fields:
      line: string
"""

CUSTOMERS = ["c0", "c1", "c2", "c3"]
COUNTRIES = ["CN", "US", "cn", "中国"]
CATEGORIES = ["toy", "book", "书", "food"]
CHANNELS: list[Any] = ["web", "app", 3, 2.5, True, None, {"x": 1}]
WINDOWS = ["3d", "10d", "30d", "2w", "12h", "45d"]
NUMBERS = st.sampled_from([0, 1, 2, 3, 5, 10, 100, 250, 0.5, 2.25, -1])


def _agg() -> st.SearchStrategy[tuple[str, str]]:
    """(aggregate text, its type)."""
    filters = st.sampled_from(
        [
            "",
            " where amount > 10",
            " where category == 'toy'",
            " where qty between 1 and 3",
            " where channel == 'web'",
            " where amount is null",
        ]
    )
    window = st.one_of(st.just(""), st.sampled_from(WINDOWS).map(lambda w: ", " + w))

    def make(parts: tuple[str, str, str, str]) -> tuple[str, str]:
        func, ref, where, win = parts
        kinds = {"count": "number", "sum": "number", "avg": "number", "distinct": "number"}
        kind = kinds.get(func)
        if kind is None:
            kind = {
                "order.amount": "number",
                "order.category": "string",
                "order.qty": "number",
                "order.time": "time",
                "order.channel": "any",
            }[ref]
        if func == "count":
            ref = ref.split(".")[0]
        return f"{func}({ref}{where}{win})", kind

    funcs = st.sampled_from(
        ["count", "sum", "avg", "min", "max", "distinct", "first", "last", "top"]
    )
    refs = st.sampled_from(
        ["order.amount", "order.category", "order.qty", "order.time", "order.channel"]
    )

    def legal(parts: tuple[str, str, str, str]) -> bool:
        func, ref = parts[0], parts[1]
        if func in ("sum", "avg") and ref not in ("order.amount", "order.qty"):
            return False
        if func == "top" and ref not in ("order.category", "order.amount", "order.qty"):
            return False
        return not (func in ("min", "max") and ref == "order.channel")

    return st.tuples(funcs, refs, filters, window).filter(legal).map(make)


def _compare(kind: str) -> st.SearchStrategy[str]:
    if kind == "number":
        return st.tuples(st.sampled_from([">", ">=", "<", "==", "!="]), NUMBERS).map(
            lambda p: f"{p[0]} {p[1]}"
        )
    if kind == "string":
        return st.sampled_from(
            ["== 'toy'", "!= 'book'", "> 'm'", "in ['toy', '书']", "is null", "startswith 't'"]
        )
    if kind == "time":
        return st.sampled_from(["> now() - 10d", "< now() - 20d", "is not null", ">= '2024-02-01'"])
    return st.sampled_from(["== 'web'", "== 3", "is null", "> 2", "!= true"])


def _atom(tags: list[str]) -> st.SearchStrategy[str]:
    attribute = st.sampled_from(
        [
            "spend > 100",
            "spend <= 2.5",
            "country == 'CN'",
            "country in ['US', '中国']",
            "level % 2 == 1",
            "vip",
            "not vip",
            "vip == false",
            "signup < '2024-02-01'",
            "joined >= '2024-01-15'",
            "country is null",
            "spend between 1 and 250",
            "lower(country) == 'cn'",
            "len(country) > 1",
            "country matches '^[A-Z]+$'",
            "coalesce(spend, 0) + level > 3",
            "abs(spend - 100) < 50",
            "round(spend / 3, 1) > 1",
            "profile.tier == 'gold'",
            "event_count >= 3",
            "first_seen < now() - 30d",
            "days_since(signup) > 40",
            "max(spend, level) >= 5",
            "case when spend > 100 then 'a' else 'b' end == 'a'",
            "id != 'c1'",
            "has_tag('imp')",
            "tag('imp') > 2",
            "coalesce(tag('imp'), 0) + level >= 4",
        ]
    )
    aggregate = st.tuples(_agg(), st.data()).map(lambda p: p[0])
    compared = _agg().flatmap(lambda a: _compare(a[1]).map(lambda c: f"{a[0]} {c}"))
    timed = st.sampled_from(
        [
            "days_since(last(order.time)) > 7",
            "hours_since(first(order.time)) < 2000",
            "last(order.time) > now() - 15d",
            "count(visit, 10d) > 0",
            "count(feedback) >= 2",
            "sum(feedback.score, 20d) > 4",
        ]
    )
    streaks = st.sampled_from(
        [
            "streak(month, count(order) > 0) >= 2",
            "streak(week, sum(order.amount) > 10) > 1",
            "every(2 weeks, count(order) >= 1)",
            "streak(day, count(visit) > 0) >= 1",
            "streak(month, count(order) == 0 and spend > 1) >= 1",
            "every(3 days, max(order.amount) > 5)",
            "streak(quarter, count(order) > 2) >= 1",
            "streak(week, top(order.category) == 'toy') >= 1",
            "streak(month, last(order.amount) > 3) >= 1",
        ]
    )
    options = [attribute, compared, timed, streaks]
    del aggregate
    if tags:
        options.append(
            st.sampled_from(
                [f"has_tag('{t}')" for t in tags] + [f"tags.contains('{t}')" for t in tags]
            )
        )
    return st.one_of(*options)


def boolean_rule(tags: list[str]) -> st.SearchStrategy[str]:
    return st.recursive(
        _atom(tags),
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda p: f"({p[0]}) and ({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]}) or ({p[1]})"),
            inner.map(lambda e: f"not ({e})"),
        ),
        max_leaves=4,
    )


VALUES = st.sampled_from(
    [
        "sum(order.amount, 30d)",
        "top(order.category)",
        "last(order.category)",
        "count(order where amount > 10)",
        "first(order.channel)",
        "avg(order.qty, 45d)",
        "max(order.time)",
        "case when spend > 100 then '高' when spend > 10 then '中' else '低' end",
        "streak(month, count(order) > 0)",
        "distinct(order.category, 60d)",
    ]
)


@st.composite
def tag_set(draw: st.DrawFn) -> list[dict[str, Any]]:
    """3 to 6 tags; later ones may read earlier ones."""
    # an imported tag (uploaded by the test, valid for 20 days) that rules may read
    tags: list[dict[str, Any]] = [
        {
            "name": "imp",
            "entity": "customer",
            "kind": "imported",
            "value_type": "integer",
            "valid_for": "20d",
        }
    ]
    for i in range(draw(st.integers(3, 6))):
        name = f"t{i}"
        kind = draw(st.sampled_from(["rule", "rule", "value", "both"]))
        spec: dict[str, Any] = {"name": name, "entity": "customer"}
        if kind in ("rule", "both"):
            spec["rule"] = draw(boolean_rule([t["name"] for t in tags[1:]]))
        if kind in ("value", "both"):
            spec["value"] = draw(VALUES)
        tags.append(spec)
    tags.append(
        {
            "name": "batch_busy",
            "entity": "product_batch",
            "rule": draw(
                st.sampled_from(
                    [
                        "count(feedback, 30d) >= 2",
                        "sum(feedback.score) > 5",
                        "streak(week, count(feedback) > 0) >= 1",
                    ]
                )
            ),
        }
    )
    return tags


def _time(day: float) -> int:
    return T0 + int(day * DAY)


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    customers = CUSTOMERS
    for i in range(draw(st.integers(1, 40))):
        who = draw(st.sampled_from(customers))
        day = draw(st.floats(0, SPAN, allow_nan=False).map(lambda d: round(d * 8) / 8))
        kind = draw(st.sampled_from(["order", "order", "order", "identify", "visit", "feedback"]))
        event: dict[str, Any] = {
            "id": f"e{i}",
            "type": kind,
            "entity": {"type": "customer", "id": who},
            "time": _iso(_time(day)),
        }
        if kind == "order":
            event["properties"] = {
                k: v
                for k, v in {
                    "amount": draw(
                        st.one_of(
                            st.none(), st.integers(0, 300), st.integers(0, 40).map(lambda x: x / 4)
                        )
                    ),
                    "category": draw(st.one_of(st.none(), st.sampled_from(CATEGORIES))),
                    "qty": draw(st.one_of(st.none(), st.integers(1, 5))),
                    "channel": draw(st.sampled_from(CHANNELS)),
                }.items()
                if v is not None or draw(st.booleans())
            }
        elif kind == "identify":
            event["attributes"] = {
                k: v
                for k, v in {
                    "country": draw(st.one_of(st.none(), st.sampled_from(COUNTRIES))),
                    "spend": draw(
                        st.one_of(
                            st.none(), st.integers(0, 300), st.integers(0, 20).map(lambda x: x / 2)
                        )
                    ),
                    "level": draw(st.one_of(st.none(), st.integers(0, 6))),
                    "vip": draw(st.one_of(st.none(), st.booleans())),
                    "signup": draw(
                        st.one_of(st.none(), st.floats(0, 60).map(lambda d: _iso(_time(round(d))))),
                    ),
                    "joined": draw(
                        st.one_of(
                            st.none(), st.sampled_from(["2024-01-10", "2024-01-20", "2024-02-01"])
                        )
                    ),
                    "profile": draw(
                        st.one_of(st.none(), st.sampled_from([{"tier": "gold"}, {"tier": 1}, {}]))
                    ),
                }.items()
                if draw(st.booleans())
            }
        elif kind == "feedback":
            event["properties"] = {"score": draw(st.integers(0, 5))}
            if draw(st.booleans()):
                event["related"] = {"product_batch": draw(st.sampled_from(["b0", "b1"]))}
        out.append(event)
    return out


def _iso(micros: int) -> str:
    from tagloop.timeutil import from_us

    return from_us(micros).isoformat()
