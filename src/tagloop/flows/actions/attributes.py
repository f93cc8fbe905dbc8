"""``set_attribute(name, value)`` and ``set_priority(level)``: change the entity's profile.

The change is an event of type ``flow_update`` with the attributes set (so the profile,
the tags that read the attribute, and other flows follow as for any event), with an id
derived from the run and step, so a retried step changes nothing twice.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from tagloop.flows.actions.base import Action, ActionContext
from tagloop.flows.actions.target import apply, target


class SetAttributeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    value: Any
    on: str | None = None
    """A related entity's type name (``customer``) instead of the run's entity."""


class SetAttribute(Action):
    name = "set_attribute"
    Args = SetAttributeArgs
    positional = ("name", "value")
    side_effects = False
    summary = "set an attribute of the entity (or of a related one, on: TYPE)"

    async def run(self, args: Any, ctx: ActionContext) -> dict[str, Any]:
        return await _set(ctx, args.on, {args.name: args.value}, self.name)


PRIORITIES = ("LOW", "NORMAL", "MEDIUM", "HIGH", "URGENT")


class SetPriorityArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: str
    attribute: str = "priority"
    on: str | None = None

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = str(value).strip().upper()
        if level not in PRIORITIES:
            raise ValueError(f"{value!r} is not a priority (one of {', '.join(PRIORITIES)})")
        return level


class SetPriority(Action):
    name = "set_priority"
    Args = SetPriorityArgs
    positional = ("level",)
    side_effects = False
    summary = "set the entity's priority attribute: LOW, NORMAL, MEDIUM, HIGH or URGENT"

    async def run(self, args: Any, ctx: ActionContext) -> dict[str, Any]:
        return await _set(ctx, args.on, {args.attribute: args.level}, self.name)


async def _set(
    ctx: ActionContext, on: str | None, values: dict[str, Any], action: str
) -> dict[str, Any]:
    entity_type, entity_id = target(ctx.scope, on, action)
    changed = await apply(
        ctx, lambda effects, key: effects.set_attributes(key, entity_type, entity_id, values)
    )
    return {"entity": f"{entity_type}/{entity_id}", "changed": changed}
