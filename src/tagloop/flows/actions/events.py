"""``emit_event(TYPE, properties)``: store an event, which may trigger other flows.

Its id comes from the run and step (a retry stores it once), and it carries the chain of
flows that led to it (``context.flows``): a flow already in the chain is not started again
by it, so flows that trigger each other stop instead of looping (the run that would have
looped is recorded ``failed`` with the chain).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tagloop.flows.actions.base import Action, ActionContext
from tagloop.flows.actions.target import apply, target


class EmitEventArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    properties: dict[str, Any] = Field(default_factory=dict)
    on: str | None = None
    """The entity the event is about (a related type name); default the run's entity."""
    related: dict[str, str] = Field(default_factory=dict)


class EmitEvent(Action):
    name = "emit_event"
    Args = EmitEventArgs
    positional = ("type", "properties")
    side_effects = False
    summary = "store an event (it may trigger other flows; loops are stopped)"

    async def run(self, args: Any, ctx: ActionContext) -> dict[str, Any]:
        entity_type, entity_id = target(ctx.scope, args.on, self.name)
        event = {
            "type": args.type,
            "entity": {"type": entity_type, "id": entity_id},
            "properties": args.properties,
            "related": args.related,
        }
        return await apply(ctx, lambda effects, key: effects.emit_event(key, event))
