"""``tagloop flows test FLOW --event FILE``: what a flow would do for an event, touching
nothing (no run row, no trace, no action run: each action describes itself instead)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from tagloop.errors import NotFound, ValidationFailed
from tagloop.flows import runner
from tagloop.flows.triggers import event_view
from tagloop.ingest.event import Event
from tagloop.names import suggest

if TYPE_CHECKING:
    from tagloop.runtime import Runtime


def dry_run(rt: Runtime, name: str, event: Event) -> dict[str, Any]:
    """The outcome and trace ``name`` would have for ``event`` now.

    The entity and related entities are read as they are in the store (an unknown one is
    an empty profile without tags). Waits are reported, not waited: the walk stops there.
    """
    from tagloop.flows.worker import FlowWorker

    flow = rt.workspace.flows.get(name)
    if flow is None:
        raise NotFound(f"unknown flow {name!r}" + suggest(name, rt.workspace.flows))
    if flow.trigger.kind == "event" and event.type != flow.trigger.name:
        raise ValidationFailed(
            f"flow {name!r} is triggered by {flow.trigger.name} events, not {event.type}"
        )
    if event.entity_type != flow.entity_type:
        raise ValidationFailed(f"flow {name!r} runs on {flow.entity_type}, not {event.entity_type}")
    row = SimpleNamespace(
        id="dry-run",
        flow=name,
        version=0,
        entity_type=event.entity_type,
        entity_id=event.entity_id,
        scope={"event": event_view(event), "related": dict(event.related), "chain": [name]},
    )
    state = FlowWorker(rt).state(flow, row, [], dry=True)
    outcome = asyncio.run(runner.execute(state))
    return {"flow": name, "outcome": describe(outcome), "steps": [_step(r) for r in state.rows]}


def describe(outcome: runner.Outcome) -> dict[str, Any]:
    """An outcome as JSON: ``{"status": "succeeded"}``, ``{"status": "skipped", ...}``."""
    if isinstance(outcome, runner.Done):
        return {"status": "succeeded"}
    if isinstance(outcome, runner.Skipped):
        return {"status": "skipped", "reason": outcome.reason}
    if isinstance(outcome, runner.Failed):
        return {"status": "failed", "error": outcome.error}
    return {"status": outcome.status, "until": outcome.until}


def _step(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("step", "kind", "name", "status", "args", "result", "error")
    return {key: row[key] for key in keys if row.get(key) is not None}
