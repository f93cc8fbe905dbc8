"""The batch evaluator: every computed tag of an entity type in one SQL query.

The query shares work between tags: one CTE of the entity's events, one per aggregate
input (event type + filter + value), one grouped CTE per input computing all its
aggregates by conditional aggregation, window functions for first/last/top, per-period
panes for streaks. A tag that reads another tag of the same query inlines its
expression; other tags (imported ones) come from the current assignments. The result is
the value of every tag for every entity at ``now``, as the streaming evaluator gives it.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlglot import exp

from tagloop.engine import periods
from tagloop.engine.plans import ActiveTag
from tagloop.rules import bound as b
from tagloop.rules.sql.dialects import BOOLEAN, NUMBER, STRING, Dialect, case, lit
from tagloop.rules.sql.expr import Compiler, Unsupported, V, json_value

_SYSTEM = {
    "id": "string",
    "event_count": "integer",
    "first_seen": "datetime",
    "last_seen": "datetime",
}
_EMPTY = {"count": 0, "sum": 0, "distinct": 0}


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


@dataclass
class _Input:
    """One aggregate input: its CTE name and which value views it must compute."""

    name: str
    input: b.AggInput
    views: set[str] = field(default_factory=set)  # n s b k j t


class BatchQuery:
    """The query for the computed ``tags`` (of one entity type, in dependency order)."""

    def __init__(
        self,
        dialect: Dialect,
        entity_type: str,
        tags: list[ActiveTag],
        now: int,
        tz: ZoneInfo,
        *,
        ids: list[str] | None = None,
        external: dict[str, str] | None = None,
    ) -> None:
        self.d = dialect
        self.entity_type = entity_type
        self.tags = tags
        self.now = now
        self.tz = tz
        self.ids = ids
        self.external = external or {}  # tags read from assignments: name -> value type
        self.by_name = {t.name: t for t in tags}
        self.inputs: dict[b.AggInput, _Input] = {}
        self.ctes: list[tuple[str, exp.Expr]] = []
        self.joins: list[tuple[str, exp.Expr]] = []  # (alias, query joined on eid)
        self.agg_columns: dict[b.Agg, V] = {}
        self.pane_values: dict[tuple[b.Agg, str], tuple[str, V]] = {}
        self.streaks: dict[b.Streak, str] = {}
        self.counter = 0

    # -- building -----------------------------------------------------------------------
    def build(self) -> exp.Expr:
        roots = [
            (t, p)
            for t in self.tags
            for p in (t.definition.rule, t.definition.value)
            if p is not None
        ]
        aggs = [a for _, part in roots for a in b.aggregates(part.bound)]
        for agg in aggs:
            entry = self.inputs.get(agg.input)
            if entry is None:
                entry = self.inputs[agg.input] = _Input(f"i{len(self.inputs)}", agg.input)
            entry.views |= _views(agg)
        self.ctes.append(("ent", self._entities()))
        if self.inputs:
            self.ctes.append(("ev", self._events()))
            for entry in self.inputs.values():
                self.ctes.append((entry.name, self._input(entry)))
            self._aggregates([a for a in dict.fromkeys(aggs) if not a.per_period])
        for _, part in roots:
            for node in part.bound.walk():
                if isinstance(node, b.Streak) and node not in self.streaks:
                    self._streak(node)
        selects: list[exp.Expr] = [col("eid", "ent").as_("eid")]
        for i, tag in enumerate(self.tags):
            held, value = self.tag_sql(tag, _Resolver(self, "ent", None))
            selects += [held.as_(f"h{i}"), value.as_(f"v{i}")]
        query = exp.select(*selects).from_("ent")
        for alias, _ in self.joins:
            query = query.join(
                exp.to_identifier(alias, quoted=True),
                on=exp.EQ(this=col("eid", alias), expression=col("eid", "ent")),
                join_type="left",
                copy=False,
            )
        for alias, body in self.external_joins():
            query = query.join(
                exp.Subquery(
                    this=body, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
                ),
                on=exp.EQ(this=col("eid", alias), expression=col("eid", "ent")),
                join_type="left",
                copy=False,
            )
        return with_ctes(query, self.ctes)

    def tag_sql(self, tag: ActiveTag, resolver: _Resolver) -> tuple[exp.Expr, exp.Expr]:
        """(held, value) of ``tag`` as SQL: held when the rule is true (or, without a rule,
        when the value is not null); the value, or true."""
        compiler = Compiler(self.d, resolver)
        definition = tag.definition
        rule = (
            exp.Is(
                this=exp.Paren(this=compiler.boolean(definition.rule.bound)), expression=exp.true()
            )
            if definition.rule is not None
            else exp.true()
        )
        if definition.value is None:
            return rule, case((rule, exp.true()))
        value = compiler.compile(definition.value.bound)
        raw = value.json if value.type == "any" else value.sql
        assert raw is not None
        present: exp.Expr = exp.Not(this=exp.Is(this=raw, expression=exp.Null()))
        if value.type == "any":
            present = exp.And(this=present, expression=exp.NEQ(this=raw, expression=lit("null")))
        held = exp.And(this=rule, expression=present)
        return held, case((held, raw))

    def external_joins(self) -> list[tuple[str, exp.Expr]]:
        out: list[tuple[str, exp.Expr]] = []
        for name in sorted(self.external):
            condition = exp.and_(
                exp.EQ(this=col("entity_type"), expression=lit(self.entity_type)),
                exp.EQ(this=col("tag"), expression=lit(name)),
                exp.EQ(this=col("status"), expression=lit("active")),
                # an imported value past its validity no longer holds (see engine/imports.py)
                exp.or_(
                    exp.Is(this=col("expires_at"), expression=exp.Null()),
                    exp.GT(this=col("expires_at"), expression=lit(self.now)),
                ),
            )
            body = (
                exp.select(col("entity_id").as_("eid"), col("value").as_("value"))
                .from_("tag_assignments")
                .where(condition)
            )
            out.append((_tag_alias(name), body))
        return out

    def _entities(self) -> exp.Expr:
        query = (
            exp.select(
                col("id").as_("eid"),
                col("attributes"),
                col("event_count"),
                col("first_seen"),
                col("last_seen"),
            )
            .from_("entities")
            .where(exp.EQ(this=col("type"), expression=lit(self.entity_type)))
        )
        if self.ids is not None:
            query = query.where(exp.In(this=col("id"), expressions=[lit(i) for i in self.ids]))
        return query

    def _events(self) -> exp.Expr:
        types = sorted({i.event_type for i in self.inputs})
        columns = ["seq", "id", "type", "time", "properties"]

        def part(primary: bool) -> exp.Expr:
            table = "e"
            if primary:
                select = exp.select(
                    col("entity_id", table).as_("eid"), *(col(c, table) for c in columns)
                ).from_(
                    exp.Table(
                        this=exp.to_identifier("events"),
                        alias=exp.TableAlias(this=exp.to_identifier(table)),
                    )
                )
                owner = col("entity_type", table)
                owner_id = col("entity_id", table)
            else:
                select = (
                    exp.select(col("entity_id", "l").as_("eid"), *(col(c, table) for c in columns))
                    .from_(
                        exp.Table(
                            this=exp.to_identifier("event_links"),
                            alias=exp.TableAlias(this=exp.to_identifier("l")),
                        )
                    )
                    .join(
                        exp.Table(
                            this=exp.to_identifier("events"),
                            alias=exp.TableAlias(this=exp.to_identifier(table)),
                        ),
                        on=exp.EQ(this=col("seq", table), expression=col("event_seq", "l")),
                    )
                )
                owner = col("entity_type", "l")
                owner_id = col("entity_id", "l")
            conditions = [
                exp.EQ(this=owner, expression=lit(self.entity_type)),
                exp.LT(this=col("time", table), expression=lit(self.now)),
                exp.In(this=col("type", table), expressions=[lit(t) for t in types]),
            ]
            if self.ids is not None:
                conditions.append(exp.In(this=owner_id, expressions=[lit(i) for i in self.ids]))
            return select.where(exp.and_(*conditions))

        return exp.union(part(True), part(False), distinct=False)

    def _input(self, entry: _Input) -> exp.Expr:
        compiler = Compiler(self.d, _Resolver(self, None, "ev"))
        node = entry.input
        selects: list[exp.Expr] = [col("eid"), col("seq"), col("time")]
        value = compiler.compile(node.value) if node.value is not None else None
        if value is not None:
            for view in sorted(entry.views):
                selects.append(_view(value, view).as_(f"v_{view}"))
        conditions: list[exp.Expr] = [exp.EQ(this=col("type"), expression=lit(node.event_type))]
        if node.where is not None:
            conditions.append(
                exp.Is(this=exp.Paren(this=compiler.boolean(node.where)), expression=exp.true())
            )
        return exp.select(*selects).from_("ev").where(exp.and_(*conditions))

    # -- aggregates ---------------------------------------------------------------------
    def _aggregates(self, aggs: list[b.Agg]) -> None:
        by_input: dict[b.AggInput, list[b.Agg]] = defaultdict(list)
        for agg in aggs:
            by_input[agg.input].append(agg)
        for key, group in by_input.items():
            entry = self.inputs[key]
            grouped = [a for a in group if a.func not in ("first", "last", "top")]
            if grouped:
                alias = f"a{self._next()}"
                selects: list[exp.Expr] = [col("eid")]
                for agg in grouped:
                    name = f"c{self._next()}"
                    selects.append(self._grouped(agg).as_(name))
                    self.agg_columns[agg] = V(agg.type, col(name, alias))
                query = exp.select(*selects).from_(entry.name).group_by(col("eid"))
                self.ctes.append((alias, query))
                self.joins.append((alias, query))
            for agg in group:
                if agg.func in ("first", "last"):
                    self._ranked(entry, agg, None)
                elif agg.func == "top":
                    self._top(entry, agg, None)

    def _window(self, agg: b.Agg) -> exp.Expr:
        if agg.window is None:
            return exp.true()
        return exp.GTE(this=col("time"), expression=lit(self.now - agg.window))

    def _grouped(self, agg: b.Agg) -> exp.Expr:
        inside = self._window(agg)
        func = agg.func

        def when(value: exp.Expr) -> exp.Expr:
            return case((inside, value))

        if func == "count":
            return exp.func("COUNT", when(lit(1)))
        if func == "sum":
            return exp.func("COALESCE", exp.func("SUM", when(col("v_n"))), lit(0))
        if func == "avg":
            total = exp.func("SUM", when(col("v_n")))
            count = exp.func("COUNT", when(col("v_n")))
            return self.d.float_div(total, count)
        if func in ("min", "max"):
            view = _order_view(agg)
            value: exp.Expr = col(f"v_{view}")
            if view == STRING:
                value = self.d.order_text(value)
            return exp.func("MIN" if func == "min" else "MAX", when(value))
        # distinct: numbers, strings and booleans counted apart, as Python's keys do
        parts = [
            exp.Count(this=exp.Distinct(expressions=[when(col(f"v_{k}"))]))
            for k in (NUMBER, STRING, BOOLEAN)
        ]
        return exp.Add(this=exp.Add(this=parts[0], expression=parts[1]), expression=parts[2])

    def _ranked(self, entry: _Input, agg: b.Agg, period: str | None) -> None:
        """first/last: the value of the earliest/latest event (by time, then seq)."""
        alias = f"f{self._next()}"
        descending = agg.func == "last"
        partition = [col("eid")] + ([col("p")] if period else [])
        order = [
            exp.Ordered(this=col("time"), desc=descending),
            exp.Ordered(this=col("seq"), desc=descending),
        ]
        rank = exp.Window(
            this=exp.func("ROW_NUMBER"), partition_by=partition, order=exp.Order(expressions=order)
        )
        views = sorted(entry.views)
        source = self._source(entry, period).where(self._window(agg))
        inner = source.select(rank.as_("rn"), copy=True)
        keys = [col("eid")] + ([col("p")] if period else [])
        query = _first_rows(self.d, inner, keys, [f"v_{v}" for v in views])
        self.ctes.append((alias, query))
        self._register(agg, alias, period, _typed_result(agg, alias))

    def _top(self, entry: _Input, agg: b.Agg, period: str | None) -> None:
        """top: the most frequent value; ties go to the smallest (numbers, then strings,
        then booleans; strings by code point)."""
        alias = f"t{self._next()}"
        keys = [col("eid")] + ([col("p")] if period else [])
        kind = case(
            (exp.Not(this=exp.Is(this=col("v_n"), expression=exp.Null())), lit(0)),
            (exp.Not(this=exp.Is(this=col("v_s"), expression=exp.Null())), lit(1)),
            (exp.Not(this=exp.Is(this=col("v_b"), expression=exp.Null())), lit(2)),
        )
        rows = exp.Subquery(
            this=self._source(entry, period).where(self._window(agg)),
            alias=exp.TableAlias(this=exp.to_identifier("x")),
        )
        counted = (
            exp.select(
                *keys,
                kind.as_("k"),
                col("v_n"),
                col("v_s"),
                col("v_b"),
                exp.func("COUNT", exp.Star()).as_("cnt"),
            )
            .from_(rows)
            .where(exp.Not(this=exp.Is(this=kind, expression=exp.Null())))
            .group_by(*keys, col("v_n"), col("v_s"), col("v_b"))
        )
        order = [
            exp.Ordered(this=col("cnt"), desc=True),
            exp.Ordered(this=col("k")),
            exp.Ordered(this=col("v_n")),
            exp.Ordered(this=self.d.order_text(col("v_s"))),
            exp.Ordered(this=col("v_b")),
        ]
        rank = exp.Window(
            this=exp.func("ROW_NUMBER"), partition_by=list(keys), order=exp.Order(expressions=order)
        )
        ranked = exp.select(*keys, col("v_n"), col("v_s"), col("v_b"), rank.as_("rn")).from_(
            exp.Subquery(this=counted, alias=exp.TableAlias(this=exp.to_identifier("c")))
        )
        query = _first_rows(self.d, ranked, keys, ["v_n", "v_s", "v_b"])
        self.ctes.append((alias, query))
        value = agg.input.value
        static = value.type if value is not None else "any"
        if static in ("string", "date"):
            result = V(static, col("v_s", alias))
        elif static == "boolean":
            result = V(static, col("v_b", alias))
        elif static in ("integer", "number"):
            result = V("number", col("v_n", alias))
        elif static in ("datetime", "duration"):  # epoch µs and µs: numbers, as when streamed
            result = V(static, col("v_n", alias))
        else:
            views = {
                NUMBER: col("v_n", alias),
                STRING: col("v_s", alias),
                BOOLEAN: col("v_b", alias),
            }
            kind_of = case(
                (exp.Not(this=exp.Is(this=col("v_n", alias), expression=exp.Null())), lit(NUMBER)),
                (exp.Not(this=exp.Is(this=col("v_s", alias), expression=exp.Null())), lit(STRING)),
                (exp.Not(this=exp.Is(this=col("v_b", alias), expression=exp.Null())), lit(BOOLEAN)),
            )
            result = V("any", views=lambda k: views[k], kind=kind_of, json=None)
        self._register(agg, alias, period, result)

    def _register(self, agg: b.Agg, alias: str, period: str | None, value: V) -> None:
        if period is None:
            self.joins.append((alias, exp.Null()))
            self.agg_columns[agg] = value
        else:
            self.pane_values[(agg, period)] = (alias, value)

    def _source(self, entry: _Input, period: str | None) -> exp.Select:
        """The rows of an input, with the period index ``p`` of each event if asked."""
        columns: list[exp.Expr] = [col("eid"), col("seq"), col("time")]
        columns += [col(f"v_{v}") for v in sorted(entry.views)]
        if period is None:
            return exp.select(*columns).from_(entry.name)
        inner = exp.select(*columns, self.period_index(col("time"), period).as_("p")).from_(
            entry.name
        )
        return exp.select(exp.Star()).from_(
            exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("w")))
        )

    # -- periods and streaks ------------------------------------------------------------
    def period_index(self, time: exp.Expr, period: str) -> exp.Expr:
        """The index of the calendar period of ``time`` in the workspace time zone, as
        `tagloop.engine.periods.index` computes it."""
        offsets = periods.offsets(self.tz, 0, self.now + 366 * 86_400_000_000)
        offset: exp.Expr = lit(offsets[-1][1])
        if len(offsets) > 1:
            offset = case(
                *(
                    (exp.LT(this=time, expression=lit(nxt[0])), lit(cur[1]))
                    for cur, nxt in itertools.pairwise(offsets)
                ),
                default=lit(offsets[-1][1]),
            )
        local = exp.Add(this=time, expression=offset)
        if period in ("day", "week"):
            days = exp.Add(
                this=self.d.int_div(local, lit(86_400_000_000)),
                expression=lit(periods.EPOCH_ORDINAL),
            )
            if period == "day":
                return days
            return self.d.int_div(
                exp.Sub(this=days, expression=lit(periods.MONDAY_ORDINAL)), lit(7)
            )
        year, month = self.d.year_month(local)
        if period == "month":
            return exp.Add(
                this=exp.Mul(this=year, expression=lit(12)),
                expression=exp.Sub(this=month, expression=lit(1)),
            )
        if period == "quarter":
            return exp.Add(
                this=exp.Mul(this=year, expression=lit(4)),
                expression=self.d.int_div(exp.Sub(this=month, expression=lit(1)), lit(3)),
            )
        return year

    def _streak(self, node: b.Streak) -> None:
        """The streak per entity: the complete periods since the last one (back to the
        period of the entity's first event) in which the condition was not true.

        A period without events breaks the streak if the condition is not true for an
        empty period (evaluated per entity: it may read attributes)."""
        period = node.period
        last = periods.last_complete(period, self.now, self.tz)  # type: ignore[arg-type]
        aggs = list(dict.fromkeys(b.aggregates(node.cond)))
        panes: list[str] = []
        for key in dict.fromkeys(a.input for a in aggs):
            entry = self.inputs[key]
            group = [a for a in aggs if a.input == key]
            grouped = [a for a in group if a.func not in ("first", "last", "top")]
            alias = f"p{self._next()}"
            selects: list[exp.Expr] = [col("eid"), col("p")]
            for agg in grouped:
                name = f"c{self._next()}"
                selects.append(self._grouped(agg).as_(name))
                self.pane_values[(agg, period)] = (alias, V(agg.type, col(name, alias)))
            source = exp.Subquery(
                this=self._source(entry, period), alias=exp.TableAlias(this=exp.to_identifier("s"))
            )
            self.ctes.append(
                (alias, exp.select(*selects).from_(source).group_by(col("eid"), col("p")))
            )
            panes.append(alias)
            for agg in group:
                if agg.func in ("first", "last"):
                    self._ranked(entry, agg, period)
                    panes.append(self.pane_values[(agg, period)][0])
                elif agg.func == "top":
                    self._top(entry, agg, period)
                    panes.append(self.pane_values[(agg, period)][0])
        name = f"s{self._next()}"
        keys = f"{name}k"
        first = self.period_index(col("first_seen", "ent"), period)
        if panes:
            union: exp.Expr | None = None
            for pane in dict.fromkeys(panes):
                part = exp.select(col("eid"), col("p")).from_(pane)
                union = part if union is None else exp.union(union, part, distinct=True)
            assert union is not None
            self.ctes.append((keys, union))
        # The condition in each period that has events ...
        cond_rows = f"{name}c"
        resolver = _Resolver(self, "ent", None, pane=(period, keys))
        cond = exp.Is(
            this=exp.Paren(this=Compiler(self.d, resolver).boolean(node.cond)),
            expression=exp.true(),
        )
        if panes:
            query = (
                exp.select(col("eid", keys), col("p", keys), cond.as_("ok"), first.as_("fp"))
                .from_(keys)
                .join("ent", on=exp.EQ(this=col("eid", "ent"), expression=col("eid", keys)))
            )
            for pane in dict.fromkeys(panes):
                query = query.join(
                    pane,
                    on=exp.and_(
                        exp.EQ(this=col("eid", pane), expression=col("eid", keys)),
                        exp.EQ(this=col("p", pane), expression=col("p", keys)),
                    ),
                    join_type="left",
                    copy=False,
                )
            query = query.where(exp.LTE(this=col("p", keys), expression=lit(last)))
            self.ctes.append((cond_rows, query))
        # ... and in a period without events (aggregates at their empty values).
        empty = Compiler(self.d, _Resolver(self, "ent", None, empty=True)).boolean(node.cond)
        empty_ok = exp.Is(this=exp.Paren(this=empty), expression=exp.true())
        if panes:
            in_range = exp.GTE(this=col("p"), expression=col("fp"))
            run = exp.Window(
                this=exp.func("ROW_NUMBER"),
                partition_by=[col("eid")],
                order=exp.Order(expressions=[exp.Ordered(this=col("p"), desc=True)]),
            )
            ranked = (
                exp.select(col("eid"), col("p"), col("ok"), run.as_("rn"))
                .from_(cond_rows)
                .where(in_range)
            )
            summary = (
                exp.select(
                    col("eid"),
                    exp.func("MAX", case((exp.Not(this=col("ok")), col("p")))).as_("bad"),
                    exp.func(
                        "SUM",
                        case(
                            (
                                exp.EQ(
                                    this=exp.Add(this=col("p"), expression=col("rn")),
                                    expression=lit(last + 1),
                                ),
                                lit(1),
                            ),
                            default=lit(0),
                        ),
                    ).as_("run"),
                )
                .from_(exp.Subquery(this=ranked, alias=exp.TableAlias(this=exp.to_identifier("r"))))
                .group_by(col("eid"))
            )
            summary_name = f"{name}r"
            self.ctes.append((summary_name, summary))
            bad: exp.Expr = exp.func("COALESCE", col("bad", summary_name), lit(-(10**9)))
            run_length: exp.Expr = exp.func("COALESCE", col("run", summary_name), lit(0))
        else:
            summary_name = None
            bad = lit(-(10**9))
            run_length = lit(0)
        gap = case(
            (empty_ok, lit(-(10**9))), default=exp.Sub(this=lit(last), expression=run_length)
        )
        floor = exp.Sub(this=first, expression=lit(1))
        breaking = exp.Greatest(this=bad, expressions=[gap, floor])
        streak = exp.Greatest(
            this=exp.Sub(this=lit(last), expression=breaking), expressions=[lit(0)]
        )
        query = exp.select(col("eid", "ent").as_("eid"), streak.as_("streak")).from_("ent")
        if summary_name is not None:
            query = query.join(
                summary_name,
                on=exp.EQ(this=col("eid", summary_name), expression=col("eid", "ent")),
                join_type="left",
                copy=False,
            )
        self.ctes.append((name, query))
        self.joins.append((name, query))
        self.streaks[node] = name

    def _next(self) -> int:
        self.counter += 1
        return self.counter


def _tag_alias(name: str) -> str:
    return "tag_" + "".join(c if c.isalnum() else "_" for c in name) + f"_{abs(hash(name))}"


def _views(agg: b.Agg) -> set[str]:
    func = agg.func
    if func == "count" or agg.input.value is None:
        return set()
    if func in ("sum", "avg"):
        return {NUMBER}
    if func in ("min", "max"):
        return {_order_view(agg)}
    if func in ("distinct", "top"):
        return {NUMBER, STRING, BOOLEAN}
    static = agg.input.value.type
    if static == "any":
        return {NUMBER, STRING, BOOLEAN, "k", "j"}
    return {_first_view(static)}


def _first_rows(
    d: Dialect, ranked: exp.Select, keys: list[exp.Column], values: list[str]
) -> exp.Select:
    """The rows ranked first (``rn = 1``), one per key.

    On SQLite the query is grouped by the key, which changes nothing in the result (one row
    per key) but keeps SQLite from flattening it into the query that joins it, where it
    would be scanned once per entity (quadratic: hours at 100,000 entities); grouped, it is
    materialized and joined through an automatic index. (PostgreSQL has no MAX of a
    boolean or JSON value, and needs no such help.)"""
    picked = [exp.func("MAX", col(v)).as_(v) if d.group_first_rows else col(v) for v in values]
    query = (
        exp.select(*keys, *picked)
        .from_(exp.Subquery(this=ranked, alias=exp.TableAlias(this=exp.to_identifier("r"))))
        .where(exp.EQ(this=col("rn"), expression=lit(1)))
    )
    return query.group_by(*keys) if d.group_first_rows else query


def with_ctes(query: exp.Select, ctes: list[tuple[str, exp.Expr]]) -> exp.Select:
    """``query`` with ``ctes`` in front, built in place: sqlglot's ``with_`` copies the
    whole query on each call by default, quadratic in a 200-tag query's CTEs."""
    for name, body in ctes:
        query = query.with_(exp.to_identifier(name, quoted=True), as_=body, copy=False)
    return query


def _order_view(agg: b.Agg) -> str:
    static = agg.input.value.type if agg.input.value is not None else "any"
    if static in ("string", "date"):
        return STRING
    if static == "datetime":
        return "t"
    return NUMBER


def _first_view(static: str) -> str:
    return {"string": STRING, "date": STRING, "boolean": BOOLEAN, "datetime": "t"}.get(
        static, NUMBER
    )


def _view(value: V, view: str) -> exp.Expr:
    """One view of an aggregate's value, computed once per event in the input CTE."""
    if view == "t":
        return value.as_("datetime")
    if view == "k":
        return value.kind if value.type == "any" else lit(None)  # type: ignore[return-value]
    if view == "j":
        return value.json if value.type == "any" else lit(None)  # type: ignore[return-value]
    if value.type == "any":
        return value.as_({NUMBER: "number", STRING: "string", BOOLEAN: "boolean"}[view])
    if view == NUMBER and value.type in ("integer", "number", "datetime", "duration"):
        return value.as_("number")
    if view == STRING and value.type in ("string", "date"):
        return value.as_("string")
    if view == BOOLEAN and value.type == "boolean":
        return value.as_("boolean")
    return exp.Null()


def _typed_result(agg: b.Agg, alias: str) -> V:
    value = agg.input.value
    static = value.type if value is not None else "any"
    if static == "any":
        views = {NUMBER: col("v_n", alias), STRING: col("v_s", alias), BOOLEAN: col("v_b", alias)}
        return V("any", views=lambda k: views[k], kind=col("v_k", alias), json=col("v_j", alias))
    return V(static, col(f"v_{_first_view(static)}", alias))


class _Resolver:
    """Leaves of expressions in one place of the query: the entity row (``ent``), an event
    row of the input CTEs (``ev``), a period row of a streak, or an empty period."""

    def __init__(
        self,
        query: BatchQuery,
        entity: str | None,
        event: str | None,
        *,
        pane: tuple[str, str] | None = None,
        empty: bool = False,
    ) -> None:
        self.q = query
        self.entity = entity
        self.event = event
        self.pane = pane
        self.empty = empty

    def now(self) -> exp.Expr:
        return lit(self.q.now)

    def attr(self, node: b.Attr) -> V:
        head = node.path[0]
        if head in _SYSTEM and len(node.path) == 1 and node.type == _SYSTEM[head]:
            name = "eid" if head == "id" else head
            return V(node.type, col(name, self.entity))
        return json_value(self.q.d, col("attributes", self.entity), node.path, node.type)

    def attr_length(self, node: b.Attr) -> exp.Expr:
        return self.q.d.array_length(col("attributes", self.entity), node.path)

    def event_field(self, node: b.EventField) -> V:
        if node.path in (("time",), ("type",), ("id",)):
            return V(node.type, col(node.path[0], self.event))
        return json_value(self.q.d, col("properties", self.event), node.path, node.type)

    def agg(self, node: b.Agg) -> V:
        if node.per_period:
            if self.empty:
                return V(node.type, lit(_EMPTY.get(node.func)))
            assert self.pane is not None
            _alias, value = self.q.pane_values[(node, self.pane[0])]
            return _default(node, value)
        return _default(node, self.q.agg_columns[node])

    def streak(self, node: b.Streak) -> V:
        return V("integer", col("streak", self.q.streaks[node]))

    def tag(self, node: b.TagRef) -> V:
        inlined = self.q.by_name.get(node.name)
        if inlined is not None:
            held, value = self.q.tag_sql(inlined, self)
            if node.mode == "has":
                return V("boolean", held)
            return _stored_value(self.q, value, node.type)
        if node.name not in self.q.external:
            raise Unsupported(f"tag {node.name!r} is not computed here")
        alias = _tag_alias(node.name)
        if node.mode == "has":
            return V("boolean", exp.Not(this=exp.Is(this=col("eid", alias), expression=exp.Null())))
        return json_value(self.q.d, col("value", alias), (), node.type)

    def score(self, node: b.ScoreRef) -> V:
        """The entity's stored score (``model_scores``, written by scoring), as the stream
        reads it: null while the model has not scored the entity."""
        table = "ms"
        body = (
            exp.select(col("score", table))
            .from_(
                exp.Table(
                    this=exp.to_identifier("model_scores"),
                    alias=exp.TableAlias(this=exp.to_identifier(table)),
                )
            )
            .where(
                exp.and_(
                    exp.EQ(this=col("model", table), expression=lit(node.model)),
                    exp.EQ(this=col("entity_type", table), expression=lit(self.q.entity_type)),
                    exp.EQ(this=col("entity_id", table), expression=col("eid", self.entity)),
                )
            )
        )
        return V("number", exp.Subquery(this=body))


def _default(node: b.Agg, value: V) -> V:
    """count/sum/distinct over no events are 0, not null (a missing row in a LEFT JOIN)."""
    if node.func in _EMPTY and value.sql is not None:
        return V(value.type, exp.func("COALESCE", value.sql, lit(0)))
    return value


def _stored_value(query: BatchQuery, value: exp.Expr, static: str) -> V:
    return V(static, value)


__all__ = ["BatchQuery", "Unsupported"]
