"""What the engine knows about the tags of one entity type, prepared once per workspace.

A `TypePlan` merges the aggregate inputs of all tags of a type (one `InputPlan` each,
shared by every tag that reads it) and indexes the tags by what they depend on, so that a
change re-evaluates only the tags it can affect, in dependency order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tagloop.engine.state import InputPlan
from tagloop.rules import bound as b
from tagloop.timeutil import time_text
from tagloop.workspace import TagDefinition

RULE_SOURCE = "rule:"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class ActiveTag:
    """A tag definition with the version number the database gave it."""

    definition: TagDefinition
    version: int
    name: str = field(init=False)
    source: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.definition.name)
        object.__setattr__(self, "source", f"{RULE_SOURCE}{self.name}@v{self.version}")

    @property
    def computed(self) -> bool:
        return self.definition.computed

    def evaluate(self, ctx: Any) -> tuple[bool, Any]:
        """``(held, value)`` for an entity: held when the rule is true (or, without a rule,
        when the value is not null); the value is the value expression's, or true."""
        definition = self.definition
        if definition.rule is not None and definition.rule.fn(ctx) is not True:
            return False, None
        if definition.value is None:
            return True, True
        value = definition.value.fn(ctx)
        if value is None or (definition.spec.multi and not value):
            return False, None
        if definition.value.type == "datetime" and isinstance(value, int):
            value = time_text(value)  # times are stored as text, as attributes are
        return True, value


@dataclass
class TypePlan:
    entity_type: str
    tags: list[ActiveTag]  # computed tags in dependency order
    inputs: dict[b.AggInput, InputPlan] = field(default_factory=dict)
    by_attribute: dict[str, list[ActiveTag]] = field(default_factory=dict)
    by_input: dict[b.AggInput, list[ActiveTag]] = field(default_factory=dict)
    by_tag: dict[str, list[ActiveTag]] = field(default_factory=dict)
    timed: list[ActiveTag] = field(default_factory=list)  # can change with time alone
    whole: list[ActiveTag] = field(default_factory=list)  # read every attribute (JsonLogic)
    event_types: frozenset[str] = frozenset()

    @classmethod
    def build(cls, entity_type: str, tags: Iterable[ActiveTag]) -> TypePlan:
        plan = cls(entity_type, [t for t in tags if t.computed])
        by_attribute: dict[str, list[ActiveTag]] = defaultdict(list)
        by_input: dict[b.AggInput, list[ActiveTag]] = defaultdict(list)
        by_tag: dict[str, list[ActiveTag]] = defaultdict(list)
        for tag in plan.tags:
            deps = tag.definition.deps
            for name in deps.attributes:
                by_attribute[name].append(tag)
            for name in deps.tags:
                by_tag[name].append(tag)
            for agg in deps.aggregates:
                by_input[agg.input].append(tag)
                plan.keep(agg)
            if deps.time_dependent:
                plan.timed.append(tag)
            if deps.whole_data:
                plan.whole.append(tag)
        plan.by_attribute = dict(by_attribute)
        plan.by_input = {k: list(dict.fromkeys(v)) for k, v in by_input.items()}
        plan.by_tag = dict(by_tag)
        plan.event_types = frozenset(i.event_type for i in plan.inputs)
        return plan

    def keep(self, agg: b.Agg) -> None:
        """Keep what ``agg`` needs of its input: a window, the running total or panes."""
        value = agg.input.value
        kind = value.type if value is not None else "any"
        plan = self.inputs.get(agg.input)
        if plan is None:
            plan = self.inputs[agg.input] = InputPlan(agg.input, kind)
        if agg.per_period:
            return  # periods are added by the streaks that hold the aggregate, below
        if agg.window is None:
            plan.running = True
        else:
            plan.max_window = max(plan.max_window or 0, agg.window)

    def finish(self) -> None:
        """Register the calendar periods each input is kept per (from the streaks)."""
        for tag in self.tags:
            for part in (tag.definition.rule, tag.definition.value):
                if part is not None:
                    self.keep_periods(part.bound)

    def keep_periods(self, root: b.B) -> None:
        for node in root.walk():
            if isinstance(node, b.Streak):
                for agg in b.aggregates(node.cond):
                    self.inputs[agg.input].periods.add(node.period)

    def affected(
        self, created: bool, changed: Iterable[str], entered: Iterable[b.AggInput]
    ) -> dict[str, ActiveTag]:
        """The tags whose value may have changed (not yet those reading changed tags)."""
        if created:
            return {t.name: t for t in self.tags}
        found: dict[str, ActiveTag] = {}
        for name in changed:
            for tag in self.by_attribute.get(name, ()):
                found[tag.name] = tag
            for tag in self.whole:
                found[tag.name] = tag
        for key in entered:
            for tag in self.by_input.get(key, ()):
                found[tag.name] = tag
        return found

    def in_order(self, names: set[str]) -> list[ActiveTag]:
        return [t for t in self.tags if t.name in names]


def build_plans(active: Iterable[ActiveTag]) -> dict[str, TypePlan]:
    by_type: dict[str, list[ActiveTag]] = defaultdict(list)
    for tag in active:
        by_type[tag.definition.entity].append(tag)
    plans = {}
    for entity_type, tags in by_type.items():
        plan = TypePlan.build(entity_type, tags)
        plan.finish()
        plans[entity_type] = plan
    return plans
