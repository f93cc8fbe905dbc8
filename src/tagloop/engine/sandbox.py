"""Trying a rule on one entity held in memory: no database, the streaming evaluator's
code path (state, aggregates, periods, evidence). For documentation, tests and previews.

>>> from tagloop.rules import Scope
>>> scope = Scope("customer", {"city": "string"}, events={"order": {"amount": "number"}})
>>> trial = Trial(scope, now="2024-04-02")
>>> trial.event("order", "2024-03-30", amount=120).event("order", "2024-01-02", amount=80)
Trial(customer, 2 events)
>>> trial.rule("sum(order.amount, 30d) > 100"), trial.value("count(order)")
(True, 2)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tagloop.engine.context import EntityContext, evidence
from tagloop.engine.plans import TypePlan
from tagloop.engine.state import EntityState, InputPlan
from tagloop.rules import CompiledRule, Scope, compile_rule
from tagloop.rules import bound as b
from tagloop.store.entities import EntityRow
from tagloop.store.tags import Held
from tagloop.timeutil import parse_time, time_text


@dataclass(frozen=True, slots=True)
class _Event:
    id: str
    type: str
    time: int
    properties: dict[str, Any]


class Trial:
    """One entity (attributes, events, tags) and a time ``now`` to evaluate rules at.

    Times are ISO 8601 text read in the scope's time zone, or epoch microseconds.
    """

    def __init__(
        self,
        scope: Scope,
        *,
        now: str | int,
        attributes: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        entity_id: str = "e1",
    ) -> None:
        self.scope = scope
        self.now = self._time(now)
        self.attributes = dict(attributes or {})
        self.tags = dict(tags or {})
        self.entity_id = entity_id
        self.events: list[_Event] = []

    def __repr__(self) -> str:
        return f"Trial({self.scope.entity_type}, {len(self.events)} events)"

    def _time(self, value: str | int) -> int:
        return value if isinstance(value, int) else parse_time(value, self.scope.timezone)

    def event(self, event_type: str, time: str | int, **properties: Any) -> Trial:
        """Add an event (in any order: aggregates go by event time)."""
        self.events.append(_Event(f"x{len(self.events)}", event_type, self._time(time), properties))
        return self

    def compile(self, text: str, want: str | None = "boolean") -> CompiledRule:
        return compile_rule(text, self.scope, want=want)

    def rule(self, text: str) -> Any:
        """The value of a boolean rule: true, false or null."""
        return self._evaluate(self.compile(text))[0]

    def value(self, text: str) -> Any:
        """The value of any expression (a valued tag's ``value``); times as stored."""
        rule = self.compile(text, want=None)
        value = self._evaluate(rule)[0]
        if rule.type == "datetime" and isinstance(value, int) and not isinstance(value, bool):
            return time_text(value)
        return value

    def explain(self, text: str) -> dict[str, Any]:
        """The values the rule looked at, as a tag's evidence records them."""
        return self._evaluate(self.compile(text, want=None))[1]

    def _evaluate(self, rule: CompiledRule) -> tuple[Any, dict[str, Any]]:
        inputs = _inputs(rule.deps.aggregates, rule.bound)
        state = EntityState(len(self.events))
        ordered = sorted(enumerate(self.events), key=lambda pair: (pair[1].time, pair[0]))
        for seq, event in ordered:
            state.apply(inputs.values(), event, seq, self.now, self.scope.timezone)
        times = [e.time for e in self.events] or [self.now]
        row = EntityRow(
            self.scope.entity_type,
            self.entity_id,
            self.attributes,
            {},
            min(times),
            max(times),
            len(self.events),
            self.now,
            self.now,
        )
        held = {name: Held(value, 1, "trial") for name, value in self.tags.items()}
        ctx = EntityContext(row, state, inputs, self.now, self.scope.timezone, held)
        for key, kept in state.inputs.items():  # as the engine does before evaluating
            kept.advance(inputs[key], self.now)
        return rule.fn(ctx), evidence([rule.bound], ctx)


def _inputs(aggregates: Iterable[b.Agg], root: b.B) -> dict[b.AggInput, InputPlan]:
    """How each aggregate input is kept, as a `TypePlan` decides it for a tag."""
    plan = TypePlan("trial", [])
    for agg in aggregates:
        plan.keep(agg)
    plan.keep_periods(root)
    return plan.inputs
