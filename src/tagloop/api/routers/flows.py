"""Flows over HTTP: the workspace's flows, their runs with the trace of each, manual starts,
retries of failed runs, and dry runs of one event (``/v1/flows``).

A principal restricted to entity types sees only the flows and runs of those types; any
other flow or run answers exactly as if it did not exist (404, suggestions drawn only from
what it may see).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Row
from sqlalchemy.engine import Connection

from tagloop.api import flow_render
from tagloop.api.actor import request_actor
from tagloop.api.auth import require, runtime
from tagloop.api.body import bounds, read_limited
from tagloop.api.permissions import Principal, restrict_batch
from tagloop.api.pii import TraceRedactor, audit_read
from tagloop.api.schemas import ERRORS, ErrorBody
from tagloop.audit import Actor
from tagloop.errors import Conflict, NotFound, Unprocessable, UnsupportedMediaType, ValidationFailed
from tagloop.flows.dryrun import dry_run
from tagloop.flows.steps import Flow
from tagloop.flows.subjects import run_keys
from tagloop.flows.worker import FlowWorker
from tagloop.ingest import body as bodies
from tagloop.ingest.canonical import Ident, Name
from tagloop.ingest.event import Batch
from tagloop.ingest.pipeline import nul_path
from tagloop.ingest.single import one_event
from tagloop.names import suggest
from tagloop.runtime import Runtime
from tagloop.store import entities as entity_store
from tagloop.store import flows as flow_store

router = APIRouter(tags=["flows"])

RunStatus = Literal["pending", "running", "waiting", "retrying", "succeeded", "failed", "skipped"]
NOT_FOUND = {**ERRORS[404], "description": "no such flow or run"}
FLOW_ERRORS: dict[int | str, dict[str, Any]] = {
    **{code: ERRORS[code] for code in (400, 401, 403, 429, 503)},
    404: NOT_FOUND,
}
CONFLICT = {"model": ErrorBody, "description": "the run is not failed: only a failed run retries"}
WRONG_TYPE = {"model": ErrorBody, "description": "the flow does not run on this entity type"}


class FlowOut(BaseModel):
    name: str
    description: str
    trigger: str = Field(description="what starts it: 'event order_created', 'tag_added VIP', …")
    entity_type: str = Field(description="the entity type its runs are for")
    enabled: bool = Field(description="false: its triggers start nothing")
    steps: int = Field(description="steps, those inside if, parallel and wait_until included")
    digest: str = Field(description="hash of the current definition: a new one is a new version")
    file: str = Field(description="the workspace file that defines it")


class FlowList(BaseModel):
    items: list[FlowOut]


class RunOut(BaseModel):
    id: str
    flow: str
    version: int = Field(description="the version of the flow the run started on, from 1")
    status: RunStatus
    trigger: str = Field(description="what started it, as the flow's trigger reads")
    entity: dict[str, str] = Field(description="the entity it runs for: {type, id}")
    created_at: str
    updated_at: str
    finished_at: str | None = Field(description="when it succeeded, failed or was skipped")
    next_at: str | None = Field(
        description="pending, waiting, retrying: when a worker takes it next"
    )
    error: str | None = Field(
        description="why it failed, or the condition that skipped it; null otherwise"
    )


class RunPage(BaseModel):
    items: list[RunOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as ?before= for the next page")


class StepOut(BaseModel):
    step: str = Field(description="where in the flow: conditions[0], actions[2], …")
    kind: str = Field(
        description="condition, if, wait, wait_until, action, dedupe, or redrive (a retry)"
    )
    name: str = Field(description="the action, or the condition's text")
    attempt: int
    status: str = Field(description="ok, failed, retry, waiting or done")
    args: Any = Field(description="an action's arguments, templates filled in")
    result: Any = Field(description="what it returned, or a condition's value")
    error: str | None
    started_at: str
    finished_at: str | None


class RunDetail(RunOut):
    trace: list[StepOut] = Field(description="every step taken, in order")


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_type: Name
    entity_id: Ident
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="what the run's templates and conditions read as event.properties",
    )

    @field_validator("entity_type", "entity_id")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @field_validator("inputs")
    @classmethod
    def _no_nul_inside(cls, value: dict[str, Any]) -> dict[str, Any]:
        where = nul_path(value, "inputs")
        if where is not None:
            raise ValueError(f"{where} contains a NUL character (U+0000), which cannot be stored")
        return value


class DryRunOutcome(BaseModel):
    status: str = Field(description="succeeded, skipped, failed, or waiting (the walk stopped)")
    reason: str | None = Field(
        None, description="skipped: why ('condition not met: …', 'duplicate of run …')"
    )
    error: str | None = Field(None, description="failed: why")
    until: str | None = Field(None, description="waiting: until when")


class DryRunStep(BaseModel):
    step: str
    kind: str
    name: str
    status: str
    args: Any = None
    result: Any = Field(None, description="an action's description of what it would do")
    error: str | None = None


class DryRunOut(BaseModel):
    flow: str
    outcome: DryRunOutcome
    steps: list[DryRunStep]


TEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CanonicalEvent"}}
        },
    }
}


def visible_flow(rt: Runtime, principal: Principal, name: str) -> Flow:
    """The flow ``name``, or 404 if it is not defined or runs on a type the principal may
    not see (suggesting only flows it may see)."""
    found = rt.workspace.flows.get(name)
    if found is None or not principal.can_see(found.entity_type):
        visible = [n for n, f in rt.workspace.flows.items() if principal.can_see(f.entity_type)]
        raise NotFound(f"unknown flow {name!r}" + suggest(name, visible))
    return found


def visible_run(conn: Connection, principal: Principal, run_id: str) -> Row[Any]:
    row = flow_store.get(conn, run_id)
    if row is None or not principal.can_see(row.entity_type):
        raise NotFound(f"no flow run {run_id!r}")
    return row


def _list(rt: Runtime, principal: Principal) -> dict[str, Any]:
    return {
        "items": [
            flow_render.flow(f)
            for f in rt.workspace.flows.values()
            if principal.can_see(f.entity_type)
        ]
    }


def _runs(
    rt: Runtime,
    principal: Principal,
    name: str,
    filters: dict[str, Any],
    limit: int,
    before: str | None,
) -> dict[str, Any]:
    found = visible_flow(rt, principal, name)
    entity_type, entity_id = filters["entity_type"], filters["entity_id"]
    types: set[str] | None = None if principal.entity_types is None else set(principal.entity_types)
    if entity_type is not None:
        types = {entity_type} if principal.can_see(entity_type) else set()
    entity = (entity_type or found.entity_type, entity_id) if entity_id is not None else None
    cursor = flow_render.decode_run_cursor(before) if before else (None, None)
    with rt.db.read() as conn:
        rows = flow_store.runs(
            conn,
            flow=found.name,
            status=filters["status"],
            entity=entity,
            entity_types=types,
            limit=limit + 1,
            before=cursor[0],
            before_id=cursor[1],
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [flow_render.run(r) for r in rows],
        "next_cursor": flow_render.run_cursor(rows[-1]) if more and rows else None,
    }


def _detail(rt: Runtime, who: tuple[Principal, Actor], run_id: str) -> dict[str, Any]:
    principal, actor = who
    redact = TraceRedactor(reveal=principal.reads_pii)
    with rt.db.read() as conn:
        row = visible_run(conn, principal, run_id)
        trace = flow_store.trace(conn, row.id)
        keys = run_keys(row.entity_type, row.entity_id, row.scope)
        profiles = entity_store.load(rt.db, conn, set(keys))
    redact.know_run(rt.workspace, row.entity_type, row.scope, profiles)
    steps = [flow_render.step(t) for t in trace]
    for step in steps:
        for field in ("args", "result", "error"):
            step[field] = redact.value(step[field])
    audit_read(rt.db, actor, redact, "flow_run", row.id)
    return {**flow_render.run(row), "trace": steps}


def worker(rt: Runtime) -> FlowWorker:
    """The worker of this process if it runs one (the server that commits does: starting
    through it wakes it), else a worker that only writes runs for another to take."""
    background = rt.flows
    return background.worker if background is not None else FlowWorker(rt)


def _start(rt: Runtime, principal: Principal, name: str, body: StartIn) -> dict[str, Any]:
    found = visible_flow(rt, principal, name)
    if body.entity_type != found.entity_type:
        raise Unprocessable(f"flow {name!r} runs on {found.entity_type}, not {body.entity_type}")
    run_id = worker(rt).start(found.name, body.entity_type, body.entity_id, body.inputs)
    with rt.db.read() as conn:
        row = flow_store.get(conn, run_id)
    assert row is not None
    return flow_render.run(row)


def _retry(rt: Runtime, principal: Principal, actor: Actor, run_id: str) -> dict[str, Any]:
    with rt.db.read() as conn:
        row = visible_run(conn, principal, run_id)
    if row.status != "failed" or not flow_store.retry(rt.db, row.id, rt.clock(), actor=actor):
        with rt.db.read() as conn:
            now = flow_store.get(conn, row.id)
        status = now.status if now is not None else row.status
        raise Conflict(f"run {run_id} is {status}, not failed: only a failed run can be retried")
    with rt.db.read() as conn:
        after = flow_store.get(conn, row.id)
    assert after is not None
    if rt.flows is not None:
        rt.flows.worker.wake()
    return flow_render.run(after)


def _test(rt: Runtime, principal: Principal, name: str, raw: bytes, limits: Any) -> Any:
    found = visible_flow(rt, principal, name)
    value = bodies.parse_json(raw, limits)

    def restrict(batch: Batch) -> None:
        restrict_batch(batch, rt.workspace.dictionary, principal)

    event = one_event(rt.ingestor, value, rt.clock(), restrict=restrict)
    return flow_render.dry_run(dry_run(rt, found.name, event))


# The routes on /v1/flows/runs/... come before /v1/flows/{name}/...: a flow may be named
# "runs", and a run id must not be read as a flow name.


@router.get(
    "/v1/flows/runs/{run_id}",
    response_model=RunDetail,
    responses=FLOW_ERRORS,
    summary="Get a flow run and its trace",
)
async def get_run(
    request: Request,
    run_id: str = Path(max_length=36),
    principal: Principal = require("flows:read"),
) -> Any:
    """One run with its trace: every condition with its value, every decision, wait and
    action attempt (arguments, result, error) in the order they happened."""
    who = (principal, request_actor(request))
    return await run_in_threadpool(_detail, runtime(request), who, run_id)


@router.post(
    "/v1/flows/runs/{run_id}/retry",
    response_model=RunOut,
    responses={**FLOW_ERRORS, 409: CONFLICT},
    summary="Retry a failed flow run",
)
async def retry_run(
    request: Request,
    run_id: str = Path(max_length=36),
    principal: Principal = require("replays:write"),
) -> Any:
    """Make a failed run due again: a worker takes it and replays it from its trace.
    409 if it is not failed. Audited (``flow.retry``)."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_retry, rt, principal, actor, run_id)


@router.get("/v1/flows", response_model=FlowList, responses=FLOW_ERRORS, summary="List flows")
async def list_flows(request: Request, principal: Principal = require("flows:read")) -> Any:
    """Every flow of the workspace (for a principal restricted to entity types, the flows
    on those types) with its trigger, entity type, number of steps and current digest."""
    return await run_in_threadpool(_list, runtime(request), principal)


@router.get(
    "/v1/flows/{name}/runs",
    response_model=RunPage,
    responses=FLOW_ERRORS,
    summary="List the runs of a flow",
)
async def list_runs(
    request: Request,
    name: str = Path(max_length=255),
    status: RunStatus | None = Query(None, description="only runs with this status"),
    entity_type: str | None = Query(None, max_length=100, description="only runs on this type"),
    entity_id: str | None = Query(None, max_length=255, description="only runs for this entity"),
    limit: int = Query(50, ge=1, le=1000),
    before: str | None = Query(None, max_length=2000, description="next_cursor of a page"),
    principal: Principal = require("flows:read"),
) -> Any:
    """Runs of a flow, newest first, a page at a time (cursor: ``next_cursor``)."""
    filters = {"status": status, "entity_type": entity_type, "entity_id": entity_id}
    return await run_in_threadpool(_runs, runtime(request), principal, name, filters, limit, before)


@router.post(
    "/v1/flows/{name}/runs",
    status_code=201,
    response_model=RunOut,
    responses={**FLOW_ERRORS, 422: WRONG_TYPE},
    summary="Start a flow run",
)
async def start_run(
    request: Request,
    response: Response,
    body: StartIn,
    name: str = Path(max_length=255),
    principal: Principal = require("replays:write"),
) -> Any:
    """Start the flow now for one entity, whatever its trigger (its conditions still
    apply). The run is pending until a worker takes it (``tagloop flows run``); ``inputs``
    are what its templates read as ``event.properties``."""
    out = await run_in_threadpool(_start, runtime(request), principal, name, body)
    response.headers["Location"] = f"/v1/flows/runs/{out['id']}"
    return out


@router.post(
    "/v1/flows/{name}/test",
    response_model=DryRunOut,
    responses={**FLOW_ERRORS, 413: ERRORS[413], 415: ERRORS[415]},
    openapi_extra=TEST_BODY,
    summary="Dry-run a flow for one event",
)
async def dry_run_flow(
    request: Request,
    name: str = Path(max_length=255),
    principal: Principal = require("flows:read"),
) -> Any:
    """What the flow would do for this event now (the event in the canonical format of
    ``POST /v1/events``), touching nothing: no run, no trace, no action run; each action
    describes what it would do. The entities are read as they are in the store. Waits
    are reported, not waited: the walk stops there."""
    rt = runtime(request)
    media = bodies.media_type(request.headers.get("content-type"))
    if media != "application/json":
        raise UnsupportedMediaType(f"unsupported Content-Type {media!r}; send application/json")
    limits = bounds(request)
    raw = await read_limited(request, limits.max_body_bytes)
    if not raw.strip():
        raise ValidationFailed("the body is empty: send one canonical event as JSON")
    return await run_in_threadpool(_test, rt, principal, name, raw, limits.json)
