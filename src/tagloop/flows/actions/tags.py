"""``add_tag(TAG)`` and ``remove_tag(TAG)``: a manual (imported) tag given or taken away."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from tagloop.flows.actions.base import Action, ActionContext
from tagloop.flows.actions.target import apply, target


class AddTagArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tag: str
    value: Any = True
    on: str | None = None


class RemoveTagArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tag: str
    on: str | None = None


class AddTag(Action):
    name = "add_tag"
    Args = AddTagArgs
    positional = ("tag", "value")
    side_effects = False
    summary = "give the entity a manual tag (kind: imported), with a value if valued"

    async def run(self, args: Any, ctx: ActionContext) -> dict[str, Any]:
        return await _tag(ctx, args.on, args.tag, args.value, True, self.name)


class RemoveTag(Action):
    name = "remove_tag"
    Args = RemoveTagArgs
    positional = ("tag",)
    side_effects = False
    summary = "take a manual tag away from the entity"

    async def run(self, args: Any, ctx: ActionContext) -> dict[str, Any]:
        return await _tag(ctx, args.on, args.tag, None, False, self.name)


async def _tag(
    ctx: ActionContext, on: str | None, tag: str, value: Any, held: bool, action: str
) -> dict[str, Any]:
    entity_type, entity_id = target(ctx.scope, on, action)
    return await apply(
        ctx, lambda effects, key: effects.set_tag(key, entity_type, entity_id, tag, value, held)
    )
