"""``create_work_order(title, assignee=..., due=...)``: a work item for people.

Work orders are listed at ``/v1/work-orders`` and by ``tagloop work-orders list``; one
step of one run creates at most one (its idempotency key is unique), however often it is
retried.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from tagloop.flows.actions.base import Action, ActionContext
from tagloop.flows.actions.target import apply, target
from tagloop.timeutil import parse_duration


class WorkOrderArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    description: str = ""
    assignee: str | None = None
    """A user name, a role or a team (``maintenance``): who should do it."""
    due: str | None = None
    """How long from now it is due (``4h``, ``2d``)."""
    priority: str = "NORMAL"
    on: str | None = None

    @field_validator("due")
    @classmethod
    def _due(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a work order needs a title")
        return value


class CreateWorkOrder(Action):
    name = "create_work_order"
    Args = WorkOrderArgs
    positional = ("title",)
    side_effects = False
    summary = "create a work order (assignee, due time, status), listed at /v1/work-orders"

    async def run(self, args: Any, ctx: ActionContext) -> dict[str, Any]:
        entity_type, entity_id = target(ctx.scope, args.on, self.name)
        order = {
            "title": args.title,
            "description": args.description,
            "assignee": args.assignee,
            "due_at": ctx.now + parse_duration(args.due) if args.due else None,
            "priority": args.priority.upper(),
            "entity_type": entity_type,
            "entity_id": entity_id,
            "flow": ctx.flow,
            "run_id": ctx.run_id,
        }
        return await apply(ctx, lambda effects, key: effects.create_work_order(key, order))
