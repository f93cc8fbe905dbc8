"""Flows, flow runs, their trace and work orders as payloads (times as ISO 8601 UTC): what
``/v1/flows``, ``/v1/work-orders`` and the ``--json`` of ``tagloop flows`` and
``tagloop work-orders`` print alike."""

from __future__ import annotations

from typing import Any

from tagloop.api.render import decode_cursor, encode_cursor, ts
from tagloop.errors import ValidationFailed
from tagloop.flows.steps import Flow

RUN_STATUSES = ("pending", "running", "waiting", "retrying", "succeeded", "failed", "skipped")
"""Every status a run can have (`tagloop.store.tables.flow_runs`)."""


def flow(item: Flow) -> dict[str, Any]:
    """One flow of the workspace as defined now."""
    return {
        "name": item.name,
        "description": item.spec.description,
        "trigger": item.trigger.describe(),
        "entity_type": item.entity_type,
        "enabled": item.spec.enabled,
        "steps": len(item.walk()),
        "digest": item.digest,
        "file": item.file,
    }


def run(row: Any) -> dict[str, Any]:
    """A ``flow_runs`` row (without its scope: the trigger's data stays in the store).

    ``trigger`` is what started the run: ``manual`` for a start by hand (the stored
    trigger is the flow's, whatever started the run; the trigger key tells them apart).
    """
    manual = str(row.trigger_key).startswith("manual:")
    return {
        "id": row.id,
        "flow": row.flow,
        "version": row.version,
        "status": row.status,
        "trigger": "manual" if manual else row.trigger,
        "entity": {"type": row.entity_type, "id": row.entity_id},
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
        "finished_at": ts(row.finished_at),
        "next_at": ts(row.next_at) if row.status in ("pending", "waiting", "retrying") else None,
        "error": row.error,
    }


def step(row: Any) -> dict[str, Any]:
    """A ``flow_steps`` row: one condition, decision, wait or action attempt."""
    return {
        "step": row.step,
        "kind": row.kind,
        "name": row.name,
        "attempt": row.attempt,
        "status": row.status,
        "args": row.args,
        "result": row.result,
        "error": row.error,
        "started_at": ts(row.started_at),
        "finished_at": ts(row.finished_at),
    }


def dry_run(report: dict[str, Any]) -> dict[str, Any]:
    """`tagloop.flows.dryrun.dry_run`'s report with its times as ISO 8601 (a wait's
    ``until``), as every other time of the API."""
    outcome = dict(report["outcome"])
    if outcome.get("until") is not None:
        outcome["until"] = ts(int(outcome["until"]))
    return {**report, "outcome": outcome}


def work_order(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "description": row.description,
        "assignee": row.assignee,
        "status": row.status,
        "priority": row.priority,
        "due_at": ts(row.due_at),
        "entity": {"type": row.entity_type, "id": row.entity_id},
        "flow": row.flow,
        "run_id": row.run_id,
        "created_at": ts(row.created_at),
        "updated_at": ts(row.updated_at),
    }


def run_cursor(row: Any) -> str:
    """The cursor of the page after ``row`` (runs are paged by creation time, then id).

    >>> from types import SimpleNamespace
    >>> decode_run_cursor(run_cursor(SimpleNamespace(created_at=17, id="0193-ab")))
    (17, '0193-ab')
    """
    return encode_cursor(f"{row.created_at}:{row.id}")


def decode_run_cursor(cursor: str) -> tuple[int, str]:
    created, _, run_id = decode_cursor(cursor).partition(":")
    if not run_id or len(run_id) > 36:
        raise ValidationFailed(INVALID_CURSOR)
    return _number(created), run_id


def work_order_cursor(row: Any) -> str:
    return encode_cursor(str(row.id))


def decode_work_order_cursor(cursor: str) -> int:
    """
    >>> from types import SimpleNamespace
    >>> decode_work_order_cursor(work_order_cursor(SimpleNamespace(id=42)))
    42
    """
    return _number(decode_cursor(cursor))


INVALID_CURSOR = "invalid cursor: pass next_cursor from the previous page"


def _number(text: str) -> int:
    """A cursor's number: ASCII digits that fit a signed 64-bit column."""
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:
        raise ValidationFailed(INVALID_CURSOR)
    return int(text)
