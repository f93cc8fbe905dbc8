"""What a flow's conditions and templates see: the trigger's entity, its event, and the
entities the event relates (by type name).

Conditions are the rule language, bound in a `flow_scope`: bare names are the entity's
attributes and ``tags.contains(..)`` its tags, as in a tag rule; ``event.<property>`` (and
``event.time``, ``event.type``, ``event.id``) is the triggering event; ``<type>.<attribute>``
and ``<type>.tags.contains(..)`` are the entity of that type the event relates (the
order's ``customer``), or the entity itself when it is of that type. A related entity the
event does not name is null, so a condition on it is null (false).

Event aggregates (``count(order, 30d)``) are for tags: a flow tests the tag instead
(``has_tag('frequent_buyer')``), so the aggregate is computed once, incrementally, and
explained like every tag.

>>> from tagloop.rules import compile_rule
>>> order = Scope("order", {"amount": "number"}, events={"order_created": {"total": "number"}},
...     trigger_event="order_created",
...     qualifiers={"customer": Scope("customer", {"city": "string"},
...         tags={"VIP": TagInfo("customer", "boolean")})})
>>> rule = compile_rule("customer.tags.contains('VIP') and event.total > 100", order)
>>> ctx = FlowContext(0, Subject("order", "O-1", {"amount": 5}, {}),
...     {"type": "order_created", "properties": {"total": 120}},
...     {"customer": Subject("customer", "C-1", {"city": "上海"}, {"VIP": True})})
>>> rule.evaluate(ctx)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tagloop.rules import Scope, TagInfo
from tagloop.rules import bound as b
from tagloop.rules.stream import QUALIFIED, Fn, lookup

__all__ = ["FlowContext", "Scope", "Subject", "TagInfo", "flow_scope", "uses_events"]


def flow_scope(workspace: Any, entity_type: str, trigger_event: str | None) -> Scope:
    """The scope of a flow on ``entity_type`` triggered by ``trigger_event`` (None for a
    tag change, a schedule or a manual start)."""
    own = workspace.scope(entity_type)
    others = {name: workspace.scope(name) for name in workspace.dictionary.types}
    return Scope(
        own.entity_type,
        own.fields,
        events=own.events,
        tags=own.tags,
        models=own.models,
        timezone=own.timezone,
        qualifiers=others,
        trigger_event=trigger_event,
    )


def uses_events(node: b.B) -> str | None:
    """The text of the first event aggregate or streak in ``node``, if any (not allowed in
    flow conditions)."""
    for child in node.walk():
        if isinstance(child, b.Agg | b.Streak):
            return child.text or "an aggregate"
    return None


@dataclass(frozen=True)
class Subject:
    """An entity as a flow sees it: attributes and held tags (name -> value)."""

    type: str
    id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The template view: attributes, with ``id``, ``type`` and ``tags``."""
        return {**self.attributes, "id": self.id, "type": self.type, "tags": dict(self.tags)}


class FlowContext:
    """The rule `Context` of a flow condition (see the module docstring)."""

    def __init__(
        self,
        now: int,
        entity: Subject,
        event: Mapping[str, Any] | None,
        related: Mapping[str, Subject] | None = None,
    ) -> None:
        self.now = now
        self.entity = entity
        self.event = event or {}
        self.related = dict(related or {})
        self.related.setdefault(entity.type, entity)

    def attr(self, path: tuple[str, ...]) -> Any:
        head = path[0]
        if len(path) > 1 and head not in self.entity.attributes:
            if head == "event" and self.event:
                return self._event(path[1:])
            if head in self.related:
                return lookup(self.related[head].attributes, path[1:])
            return None
        return lookup(self.entity.attributes, path)

    def _event(self, path: tuple[str, ...]) -> Any:
        if len(path) == 1 and path[0] in ("time", "type", "id"):
            return self.event.get(path[0])
        return lookup(self.event.get("properties") or {}, path)

    def _holder(self, name: str) -> tuple[Subject | None, str]:
        if QUALIFIED in name:
            on, _, tag = name.partition(QUALIFIED)
            return self.related.get(on), tag
        return self.entity, name

    def has_tag(self, name: str) -> bool:
        holder, tag = self._holder(name)
        return holder is not None and tag in holder.tags

    def tag_value(self, name: str) -> Any:
        holder, tag = self._holder(name)
        return None if holder is None else holder.tags.get(tag)

    def score(self, model: str) -> Any:
        return None

    def data(self) -> Any:
        return self.entity.attributes

    def agg(self, node: b.Agg) -> Any:  # refused when the flow loads (`uses_events`)
        raise LookupError(f"flow conditions cannot aggregate events: {node.text}")

    def streak(self, node: b.Streak, cond: Fn) -> int:
        raise LookupError(f"flow conditions cannot aggregate events: {node.text}")
