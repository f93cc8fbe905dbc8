"""Name resolution and type checking: parse tree -> bound tree, or a `RuleError` with the
span at fault.

A name is a profile attribute in plain expressions, an event type (``order`` or
``order.amount``) as the first argument of an aggregate, and an event property (``amount``)
inside the aggregate's ``where``. The binder knows the entity dictionary, the declared
event types and their properties, the tags and the models of the workspace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from tagloop.dictionary.types import SYSTEM_ATTRIBUTES
from tagloop.engine.periods import ALIASES as PERIOD_ALIASES
from tagloop.names import suggest
from tagloop.rules import bound as b
from tagloop.rules import tree as t
from tagloop.rules.errors import RuleError
from tagloop.rules.functions import AGGREGATES, FUNCTIONS
from tagloop.rules.jsfuncs import EACH
from tagloop.rules.printer import to_text
from tagloop.timeutil import to_us

ORDERED = frozenset({"integer", "number", "string", "datetime", "date", "duration"})
EVENT_FIELDS: dict[str, str] = {"time": "datetime", "type": "string", "id": "string"}


@dataclass(frozen=True)
class TagInfo:
    entity: str
    type: str  # boolean, or the type of a valued tag (a list type for multi-valued)


@dataclass(frozen=True)
class Scope:
    """What a rule on ``entity_type`` can see."""

    entity_type: str
    fields: dict[str, str] = field(default_factory=dict)
    # declared event types -> their declared properties (empty: any property)
    events: dict[str, dict[str, str]] = field(default_factory=dict)
    tags: dict[str, TagInfo] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # model -> entity type
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    # Flow conditions only: other entities by type name (``customer.tags.contains(..)``,
    # ``customer.city``), and the event type that triggered the flow (``event.amount``).
    qualifiers: dict[str, Scope] = field(default_factory=dict)
    trigger_event: str | None = None

    def attribute_type(self, name: str) -> str | None:
        return self.fields.get(name) or SYSTEM_ATTRIBUTES.get(name)

    @property
    def names(self) -> list[str]:
        return [*self.fields, *SYSTEM_ATTRIBUTES]


def bind(tree: t.Node, scope: Scope, *, want: str | None = "boolean") -> b.B:
    """Bind ``tree`` in ``scope``; ``want`` is the type the whole rule must have.

    >>> from tagloop.rules.parser import parse
    >>> scope = Scope("customer", {"spend": "number"}, events={"order": {"amount": "number"}})
    >>> node = bind(parse("sum(order.amount, 30d) > spend"), scope)
    >>> node.args[0].func, node.args[0].input.event_type, node.args[0].window
    ('sum', 'order', 2592000000000)
    """
    node = _Binder(scope).bind(tree, _Where.EXPR)
    if want and not _fits(node.type, want):
        raise RuleError(
            f"a tag rule must be true or false, but this is {_a(node.type)}", *tree.span
        )
    return node


class _Where:
    EXPR = "expr"  # profile attributes, aggregates allowed
    PERIOD = "period"  # inside streak/every: aggregates are per period
    EVENT = "event"  # inside an aggregate's where: event fields


def _a(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def _fits(actual: str, wanted: str) -> bool:
    if actual in ("any", "null") or wanted == "any" or actual == wanted:
        return True
    return actual == "integer" and wanted == "number"


def _unify(a: str, c: str) -> str | None:
    if a == c:
        return a
    if a in ("any", "null"):
        return c
    if c in ("any", "null"):
        return a
    if {a, c} <= b.NUMERIC:
        return "number"
    return None


class _Binder:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.event_type: str | None = None  # inside an aggregate's where
        self.each_depth = 0  # inside the body of JsonLogic's map/filter/...: data is the item

    def bind(self, node: t.Node, where: str) -> b.B:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise RuleError(f"{type(node).__name__.lower()} is not allowed here", *node.span)
        result: b.B = method(node, where)
        return result

    # -- leaves -----------------------------------------------------------------------
    def _Literal(self, node: t.Literal, where: str) -> b.B:
        value = node.value
        kind = (
            "null"
            if value is None
            else "boolean"
            if isinstance(value, bool)
            else "integer"
            if isinstance(value, int)
            else "number"
            if isinstance(value, float)
            else "string"
        )
        return b.Const(kind, value, text=to_text(node))

    def _Duration(self, node: t.Duration, where: str) -> b.B:
        return b.Const("duration", node.micros, text=to_text(node))

    def _ListLit(self, node: t.ListLit, where: str) -> b.B:
        items = [self.bind(i, where) for i in node.items]
        item_type = "null"
        for item, source in zip(items, node.items, strict=True):
            unified = _unify(item_type, item.type)
            if unified is None:
                raise RuleError("list items must all have the same type", *source.span)
            item_type = unified
        if not all(isinstance(i, b.Const) for i in items):
            raise RuleError("list items must be literal values", *node.span)
        return b.Const("list", tuple(i.value for i in items), text=to_text(node))  # type: ignore[attr-defined]

    def _PeriodSpan(self, node: t.PeriodSpan, where: str) -> b.B:
        raise RuleError(f"'{to_text(node)}' only makes sense in every(...)", *node.span)

    def _Name(self, node: t.Name, where: str) -> b.B:
        head = node.parts[0]
        if where == _Where.EVENT:
            return self._event_field(node)
        kind = self.scope.attribute_type(head)
        if kind is None and len(node.parts) > 1:
            if head == "event" and self.scope.trigger_event is not None:
                return self._trigger_field(node)
            if head in self.scope.qualifiers:
                return self._qualified(node)
        if kind is None:
            if head in self.scope.events:
                raise RuleError(
                    f"{head!r} is an event type: use it in an aggregate such as "
                    f"count({head}) or sum({head}.<property>)",
                    *node.span,
                )
            raise RuleError(
                f"unknown attribute {head!r} of {self.scope.entity_type}"
                + suggest(head, self.scope.names),
                *node.span,
            )
        if len(node.parts) > 1:
            if kind not in ("object", "any"):
                raise RuleError(
                    f"{head!r} is {_a(kind)}, it has no field {node.parts[1]!r}", *node.span
                )
            kind = "any"
        return b.Attr(kind, node.parts, text=to_text(node))

    def _trigger_field(self, node: t.Name) -> b.B:
        """``event.amount`` in a flow condition: a property of the triggering event."""
        assert self.scope.trigger_event is not None
        kind = self._property_type(node, self.scope.trigger_event, node.parts[1:])
        return b.Attr(kind, node.parts, text=to_text(node))

    def _qualified(self, node: t.Name) -> b.B:
        """``customer.city`` in a flow condition: an attribute of a related entity."""
        head, name = node.parts[0], node.parts[1]
        other = self.scope.qualifiers[head]
        kind = other.attribute_type(name)
        if kind is None:
            raise RuleError(
                f"unknown attribute {name!r} of {head}" + suggest(name, other.names), *node.span
            )
        if len(node.parts) > 2:
            kind = "any"
        return b.Attr(kind, node.parts, text=to_text(node))

    def _event_field(self, node: t.Name) -> b.B:
        assert self.event_type is not None
        kind = self._property_type(node, self.event_type, node.parts)
        return b.EventField(kind, node.parts, text=to_text(node))

    def _property_type(self, node: t.Name, event_type: str, path: tuple[str, ...]) -> str:
        """The type of ``path`` in an event of ``event_type`` (``time``, ``type``, ``id`` or
        a property; a declared event type refuses undeclared properties)."""
        name = path[0]
        if name in EVENT_FIELDS and len(path) == 1:
            return EVENT_FIELDS[name]
        properties = self.scope.events.get(event_type, {})
        if properties and name not in properties:
            raise RuleError(
                f"unknown property {name!r} of {event_type} events"
                + suggest(name, [*properties, *EVENT_FIELDS]),
                *node.span,
            )
        return properties.get(name, "any") if len(path) == 1 else "any"

    # -- operators --------------------------------------------------------------------
    def _Unary(self, node: t.Unary, where: str) -> b.B:
        operand = self.bind(node.operand, where)
        if node.op == "not":
            self._expect(node.operand, operand, "boolean", "'not'")
            return b.Op("boolean", "not", (operand,), text=to_text(node))
        if operand.type == "duration":
            return b.Op("duration", "neg", (operand,), text=to_text(node))
        self._expect(node.operand, operand, "number", "'-'")
        result = operand.type if operand.type in b.NUMERIC else "number"
        return b.Op(result, "neg", (operand,), text=to_text(node))

    def _Logical(self, node: t.Logical, where: str) -> b.B:
        args = []
        for operand in node.operands:
            bound = self.bind(operand, where)
            self._expect(operand, bound, "boolean", f"'{node.op}'")
            args.append(bound)
        return b.Op("boolean", node.op, tuple(args), text=to_text(node))

    def _Binary(self, node: t.Binary, where: str) -> b.B:
        left, right = self.bind(node.left, where), self.bind(node.right, where)
        text = to_text(node)
        if node.op in ("+", "-", "*", "/", "%"):
            return b.Op(self._arithmetic(node, left, right), node.op, (left, right), text=text)
        left, right = self._coerce(left, right), self._coerce(right, left)
        unified = _unify(left.type, right.type)
        if unified is None:
            raise RuleError(f"cannot compare {_a(left.type)} with {_a(right.type)}", *node.span)
        if node.op not in ("==", "!=") and unified not in ORDERED | {"any", "null"}:
            raise RuleError(
                f"'{node.op}' needs numbers, strings or times, not {unified}", *node.span
            )
        return b.Op("boolean", node.op, (left, right), text=text)

    def _arithmetic(self, node: t.Binary, left: b.B, right: b.B) -> str:
        lt, rt, op = left.type, right.type, node.op
        if op == "+" and lt == rt == "string":
            return "string"
        if lt == "datetime" and rt == "duration" and op in ("+", "-"):
            return "datetime"
        if lt == "duration" and rt == "datetime" and op == "+":
            return "datetime"
        if lt == rt == "datetime" and op == "-":
            return "duration"
        if lt == rt == "duration" and op in ("+", "-"):
            return "duration"
        if op == "%":
            # Whole numbers only: engines disagree on remainders of fractions.
            self._expect(node.left, left, "integer", "'%'")
            self._expect(node.right, right, "integer", "'%'")
            return "integer"
        self._expect(node.left, left, "number", f"'{op}'")
        self._expect(node.right, right, "number", f"'{op}'")
        return "integer" if lt == rt == "integer" and op != "/" else "number"

    def _coerce(self, value: b.B, other: b.B) -> b.B:
        """A string literal compared with a time or a date is read as one."""
        if not (isinstance(value, b.Const) and value.type == "string"):
            return value
        if other.type == "datetime":
            try:
                parsed = datetime.fromisoformat(str(value.value).replace("Z", "+00:00"))
            except ValueError:
                return value  # reported as a type mismatch
            return b.Const("datetime", to_us(parsed, self.scope.timezone), text=value.text)
        if other.type == "date":
            try:
                datetime.strptime(str(value.value), "%Y-%m-%d")
            except ValueError:
                return value
            return b.Const("date", value.value, text=value.text)
        return value

    def _StringTest(self, node: t.StringTest, where: str) -> b.B:
        left, right = self.bind(node.left, where), self.bind(node.right, where)
        if node.op == "contains" and left.type == "list":
            return b.Op("boolean", "contains", (left, right), text=to_text(node))
        self._expect(node.left, left, "string", f"'{node.op}'")
        self._expect(node.right, right, "string", f"'{node.op}'")
        if node.op == "matches" and isinstance(right, b.Const):
            import re

            try:
                re.compile(str(right.value))
            except re.error as exc:
                raise RuleError(f"invalid regular expression: {exc}", *node.right.span) from exc
        return b.Op("boolean", node.op, (left, right), text=to_text(node))

    def _In(self, node: t.In, where: str) -> b.B:
        value = self.bind(node.value, where)
        options = self.bind(node.options, where)
        if options.type not in ("list", "any"):
            raise RuleError(
                f"'in' needs a list on its right, not {_a(options.type)}", *node.options.span
            )
        return b.Op(
            "boolean", "notin" if node.negated else "in", (value, options), text=to_text(node)
        )

    def _Between(self, node: t.Between, where: str) -> b.B:
        value = self.bind(node.value, where)
        low = self._coerce(self.bind(node.low, where), value)
        high = self._coerce(self.bind(node.high, where), value)
        unified: str | None = value.type
        for other in (low, high):
            unified = _unify(unified, other.type) if unified else None
        if unified is None:
            raise RuleError("'between' needs bounds of the same type as the value", *node.span)
        return b.Op(
            "boolean",
            "notbetween" if node.negated else "between",
            (value, low, high),
            text=to_text(node),
        )

    def _IsNull(self, node: t.IsNull, where: str) -> b.B:
        value = self.bind(node.value, where)
        return b.Op(
            "boolean", "notnull" if node.negated else "isnull", (value,), text=to_text(node)
        )

    def _Case(self, node: t.Case, where: str) -> b.B:
        args: list[b.B] = []
        result = "null"
        for cond, value in node.whens:
            bound_cond = self.bind(cond, where)
            self._expect(cond, bound_cond, "boolean", "'when'")
            bound_value = self.bind(value, where)
            unified = _unify(result, bound_value.type)
            if unified is None:
                raise RuleError("all branches of 'case' must have the same type", *value.span)
            result = unified
            args += [bound_cond, bound_value]
        default = (
            self.bind(node.default, where) if node.default is not None else b.Const("null", None)
        )
        unified = _unify(result, default.type)
        if unified is None and node.default is not None:
            raise RuleError("all branches of 'case' must have the same type", *node.default.span)
        args.append(default)
        return b.Op(unified or result, "case", tuple(args), text=to_text(node))

    # -- calls ------------------------------------------------------------------------
    def _Call(self, node: t.Call, where: str) -> b.B:
        name = node.name
        if name in ("streak", "every"):
            return self._period(node, where)
        if name in ("has_tag", "tag"):
            return self._tag(node)
        if name == "score":
            return self._score(node)
        if name == "jl_data":
            return self._data(node, where)
        if name in EACH:
            return self._each(node, where)
        if name in AGGREGATES and self._looks_like_events(node):
            return self._aggregate(node, where)
        function = FUNCTIONS.get(name)
        if function is None:
            known = [*FUNCTIONS, *AGGREGATES, *EACH, "streak", "every", "has_tag", "tag", "score"]
            raise RuleError(f"unknown function {name!r}" + suggest(name, known), *node.name_span)
        if node.where is not None:
            raise RuleError(f"{name}() takes no 'where' filter", *node.where.span)
        count = len(node.args)
        if count < function.min_args or (
            function.max_args is not None and count > function.max_args
        ):
            high = function.max_args
            expected = (
                f"{function.min_args}"
                if function.min_args == high
                else f"{function.min_args} or more"
                if high is None
                else f"{function.min_args} to {high}"
            )
            raise RuleError(f"{name}() takes {expected} argument(s), got {count}", *node.span)
        args = tuple(self.bind(arg, where) for arg in node.args)
        if function.js:
            args = tuple(_as_json(a) for a in args)
        try:
            result = function.result([a.type for a in args])
        except ValueError as exc:
            raise RuleError(str(exc), *node.span) from None
        return b.Func(result, name, args, text=to_text(node))

    def _data(self, node: t.Call, where: str) -> b.B:
        if node.args or node.where is not None:
            raise RuleError("jl_data() takes no arguments", *node.span)
        if self.each_depth:
            return b.Item("any", text=to_text(node))
        if where != _Where.EXPR:
            raise RuleError(
                "jl_data() is the entity's data: not inside an aggregate or streak/every",
                *node.span,
            )
        return b.Data("any", text=to_text(node))

    def _each(self, node: t.Call, where: str) -> b.B:
        name, count = node.name, len(node.args)
        high = 3 if name == "jl_reduce" else 2
        if not 2 <= count <= high or node.where is not None:
            expected = "2 or 3" if high == 3 else "2"
            raise RuleError(f"{name}() takes {expected} arguments, got {count}", *node.span)
        items = _as_json(self.bind(node.args[0], where))
        self.each_depth += 1
        try:
            body = self.bind(node.args[1], where)
        finally:
            self.each_depth -= 1
        initial = None
        if name == "jl_reduce":
            initial = self.bind(node.args[2], where) if count == 3 else b.Const("null", None)
        return b.Each(EACH[name], name[3:], items, body, initial, text=to_text(node))

    def _looks_like_events(self, node: t.Call) -> bool:
        """``min(order.amount)`` aggregates events; ``min(a, b)`` is the scalar function."""
        first = node.args[0] if node.args else None
        if (
            node.name in ("min", "max")
            and len(node.args) >= 2
            and not isinstance(node.args[1], t.Duration)
        ):
            return False
        return isinstance(first, t.Name) and first.parts[0] not in self.scope.fields

    def _aggregate(self, node: t.Call, where: str) -> b.B:
        func, args = node.name, node.args
        if where == _Where.EVENT:
            raise RuleError("aggregates cannot be nested", *node.span)
        if not args or len(args) > 2:
            raise RuleError(
                f"{func}() takes an event reference and an optional window, "
                f"e.g. {func}(order{'' if func == 'count' else '.amount'}, 30d)",
                *node.span,
            )
        reference = args[0]
        assert isinstance(reference, t.Name)
        event_type = reference.parts[0]
        if event_type not in self.scope.events:
            raise RuleError(
                f"unknown event type {event_type!r}" + suggest(event_type, self.scope.events),
                *reference.span,
            )
        window: int | None = None
        if len(args) == 2:
            if not isinstance(args[1], t.Duration):
                raise RuleError("the window must be a duration such as 30d or 10m", *args[1].span)
            if where == _Where.PERIOD:
                raise RuleError(
                    "inside streak/every, aggregates cover each period: leave out the window",
                    *args[1].span,
                )
            window = args[1].micros
            if window <= 0:
                raise RuleError("the window must be longer than zero", *args[1].span)
        self.event_type = event_type
        try:
            value = self._aggregate_value(func, reference)
            filter_ = None
            if node.where is not None:
                filter_ = self.bind(node.where, _Where.EVENT)
                self._expect(node.where, filter_, "boolean", "'where'")
        finally:
            self.event_type = None
        result = {"count": "integer", "distinct": "integer", "avg": "number"}.get(func)
        if result is None:
            assert value is not None
            result = value.type
            if func == "sum":
                self._expect(reference, value, "number", "sum()")
                result = value.type if value.type in b.NUMERIC else "number"
            if func == "avg":
                result = "number"
        if func == "avg":
            assert value is not None
            self._expect(reference, value, "number", "avg()")
        if (
            func == "top"
            and value is not None
            and value.type not in ("string", "integer", "number", "date")
        ):
            raise RuleError(
                "top() needs a property declared as a string or a number", *reference.span
            )
        return b.Agg(
            result,
            func,
            b.AggInput(event_type, filter_, value),
            window,
            where == _Where.PERIOD,
            text=to_text(node),
        )

    def _aggregate_value(self, func: str, reference: t.Name) -> b.B | None:
        if func == "count":
            if len(reference.parts) > 1:
                raise RuleError(
                    "count() counts events: write count(order), or use 'where' to filter",
                    *reference.span,
                )
            return None
        if len(reference.parts) < 2:
            raise RuleError(
                f"{func}() needs a property: {func}({reference.parts[0]}.<name>)", *reference.span
            )
        return self._event_field(t.Name(reference.parts[1:], span=reference.span))

    def _period(self, node: t.Call, where: str) -> b.B:
        if where != _Where.EXPR:
            raise RuleError(f"{node.name}() cannot be nested", *node.span)
        if len(node.args) != 2 or node.where is not None:
            example = (
                "streak(month, sum(order.amount) > 500000)"
                if node.name == "streak"
                else "every(3 months, sum(order.amount) > 500000)"
            )
            raise RuleError(
                f"{node.name}() takes a period and a condition, e.g. {example}", *node.span
            )
        first, cond = node.args
        if node.name == "streak":
            if not isinstance(first, t.Name) or len(first.parts) != 1:
                raise RuleError("the period is day, week, month, quarter or year", *first.span)
            word, count = first.parts[0], None
        else:
            if not isinstance(first, t.PeriodSpan):
                raise RuleError(
                    "every() needs a count of periods, e.g. every(3 months, ...)", *first.span
                )
            word, count = first.period, first.count
        period = PERIOD_ALIASES.get(word.lower())
        if period is None:
            raise RuleError(
                f"unknown period {word!r}; use day, week, month, quarter or year"
                + suggest(word, PERIOD_ALIASES),
                *first.span,
            )
        bound_cond = self.bind(cond, _Where.PERIOD)
        self._expect(cond, bound_cond, "boolean", f"{node.name}()")
        streak = b.Streak("integer", period, bound_cond, text=to_text(node))
        if count is None:
            return streak
        if count < 1:
            raise RuleError("every() needs at least 1 period", *first.span)
        return b.Op("boolean", ">=", (streak, b.Const("integer", count)), text=to_text(node))

    def _literal_name(self, node: t.Call, what: str) -> str:
        if (
            len(node.args) != 1
            or not isinstance(node.args[0], t.Literal)
            or not isinstance(node.args[0].value, str)
        ):
            raise RuleError(
                f"{node.name}() takes the {what} name as a string, e.g. {node.name}('VIP')",
                *node.span,
            )
        return node.args[0].value

    def _tag(self, node: t.Call) -> b.B:
        name = self._literal_name(node, "tag")
        info = self.scope.tags.get(name)
        if info is None:
            raise RuleError(
                f"unknown tag {name!r}" + suggest(name, self.scope.tags), *node.args[0].span
            )
        if info.entity != self.scope.entity_type:
            raise RuleError(
                f"tag {name!r} is on {info.entity}, not {self.scope.entity_type}",
                *node.args[0].span,
            )
        if node.name == "has_tag":
            return b.TagRef("boolean", name, "has", text=to_text(node))
        return b.TagRef(info.type, name, "value", text=to_text(node))

    def _score(self, node: t.Call) -> b.B:
        name = self._literal_name(node, "model")
        entity = self.scope.models.get(name)
        if entity is None:
            raise RuleError(
                f"unknown model {name!r}" + suggest(name, self.scope.models), *node.args[0].span
            )
        if entity != self.scope.entity_type:
            raise RuleError(
                f"model {name!r} scores {entity}, not {self.scope.entity_type}", *node.args[0].span
            )
        return b.ScoreRef("number", name, text=to_text(node))

    def _Method(self, node: t.Method, where: str) -> b.B:
        target = node.target
        is_tags = isinstance(target, t.Name) and (
            target.parts == ("tags",) or target.parts == (self.scope.entity_type, "tags")
        )
        if (
            is_tags
            and node.name == "contains"
            and len(node.args) == 1
            and isinstance(node.args[0], t.Literal)
            and isinstance(node.args[0].value, str)
        ):
            call = t.Call("has_tag", node.args, span=node.span)
            bound = self._tag(call)
            return b.TagRef(bound.type, bound.name, "has", text=to_text(node))  # type: ignore[attr-defined]
        other = target.parts[0] if isinstance(target, t.Name) else None
        if (
            other in self.scope.qualifiers
            and isinstance(target, t.Name)
            and target.parts[1:] == ("tags",)
            and node.name == "contains"
            and len(node.args) == 1
        ):
            call = t.Call("has_tag", node.args, span=node.span)
            found = _Binder(self.scope.qualifiers[other])._tag(call)
            assert isinstance(found, b.TagRef)
            return b.TagRef(found.type, found.name, "has", on=other, text=to_text(node))
        if isinstance(target, t.Name) and len(target.parts) == 2 and target.parts[1] == "tags":
            raise RuleError(
                f"a rule on {self.scope.entity_type} sees its own tags only: "
                f"write tags.contains(...)",
                *target.span,
            )
        raise RuleError(
            f"unknown method '.{node.name}()'; tags.contains('NAME') is the method form", *node.span
        )

    @staticmethod
    def _expect(node: t.Node, bound: b.B, wanted: str, where: str) -> None:
        if not _fits(bound.type, wanted):
            raise RuleError(f"{where} needs {_a(wanted)}, not {_a(bound.type)}", *node.span)


def _as_json(node: b.B) -> b.B:
    """An argument of a JsonLogic operator, which sees the profile as stored JSON: a declared
    time is its ISO text there, not epoch microseconds (system times have no text)."""
    if (
        isinstance(node, b.Attr)
        and node.type == "datetime"
        and not (len(node.path) == 1 and node.path[0] in SYSTEM_ATTRIBUTES)
    ):
        return b.Attr("string", node.path, text=node.text)
    return node


def literal_value(node: b.B) -> Any:
    """The Python value of a constant node (for tests and evidence)."""
    assert isinstance(node, b.Const)
    return list(node.value) if isinstance(node.value, tuple) else node.value
