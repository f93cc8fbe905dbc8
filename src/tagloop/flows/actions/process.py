"""``start_process(NAME, inputs)``: the seam to collaboration processes.

Processes (cross-department work with SLAs) are not part of tagloop yet; a plugin that
provides them implements the ``tagloop_start_process`` hook. Without one, the step fails
with a clear message instead of pretending to start something.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tagloop.flows.actions.base import Action, ActionContext, ActionFailed
from tagloop.flows.actions.target import target


class StartProcessArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    process: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    on: str | None = None


class StartProcess(Action):
    name = "start_process"
    Args = StartProcessArgs
    positional = ("process", "inputs")
    side_effects = True
    summary = "start a collaboration process (provided by a plugin: tagloop_start_process)"

    async def run(self, args: Any, ctx: ActionContext) -> dict[str, Any]:
        from tagloop.plugins import manager

        entity_type, entity_id = target(ctx.scope, args.on, self.name)
        results = manager().hook.tagloop_start_process(
            process=args.process,
            entity_type=entity_type,
            entity_id=entity_id,
            inputs=args.inputs,
            idempotency_key=ctx.idempotency_key,
        )
        started = next((r for r in results if r is not None), None)
        if started is None:
            raise ActionFailed(
                f"start_process: no process engine is installed to start {args.process!r} "
                "(a plugin provides one through the tagloop_start_process hook)"
            )
        return dict(started)
