"""Work orders over HTTP: those the flows' ``create_work_order`` steps made, listed for the
people who do them (``GET /v1/work-orders``) and updated as they work on them
(``PATCH /v1/work-orders/{id}``, audited as ``work_order.update``).

A principal restricted to entity types sees only the work orders on those types; any
other answers exactly as if it did not exist.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tagloop.api import flow_render
from tagloop.api.actor import request_actor
from tagloop.api.auth import require, runtime
from tagloop.api.permissions import Principal
from tagloop.api.schemas import ERRORS
from tagloop.audit import Actor
from tagloop.runtime import Runtime
from tagloop.store import work_orders as work_order_store

router = APIRouter(tags=["work orders"])

Status = Literal["open", "in_progress", "done", "cancelled"]
ORDER_ERRORS: dict[int | str, dict[str, Any]] = {
    **{code: ERRORS[code] for code in (400, 401, 403, 429, 503)},
    404: {**ERRORS[404], "description": "no such work order"},
}


class WorkOrderOut(BaseModel):
    id: int
    title: str
    description: str
    assignee: str | None = Field(description="a user name, a role or a team")
    status: Status
    priority: str = Field(description="LOW, NORMAL, HIGH … as the flow set it")
    due_at: str | None
    entity: dict[str, str] = Field(description="the entity it is about: {type, id}")
    flow: str | None = Field(description="the flow that created it")
    run_id: str | None = Field(description="the run that created it (GET /v1/flows/runs/{id})")
    created_at: str
    updated_at: str


class WorkOrderPage(BaseModel):
    items: list[WorkOrderOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as ?before= for the next page")


class WorkOrderPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    assignee: str | None = Field(
        None, min_length=1, max_length=255, description="null: nobody is assigned"
    )

    @field_validator("assignee")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    @model_validator(mode="after")
    def _something(self) -> WorkOrderPatch:
        if not self.model_fields_set:
            raise ValueError("give the status or the assignee to change")
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null")
        return self


def _types(principal: Principal) -> set[str] | None:
    return None if principal.entity_types is None else set(principal.entity_types)


def _list(
    rt: Runtime,
    principal: Principal,
    status: str | None,
    assignee: str | None,
    limit: int,
    before: str | None,
) -> dict[str, Any]:
    below = flow_render.decode_work_order_cursor(before) if before else None
    with rt.db.read() as conn:
        rows = work_order_store.work_order_list(
            conn,
            status=status,
            assignee=assignee,
            limit=limit + 1,
            before=below,
            entity_types=_types(principal),
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [flow_render.work_order(r) for r in rows],
        "next_cursor": flow_render.work_order_cursor(rows[-1]) if more and rows else None,
    }


def _update(
    rt: Runtime, principal: Principal, actor: Actor, order_id: int, body: WorkOrderPatch
) -> dict[str, Any]:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    row = work_order_store.update_work_order(
        rt.db, order_id, changes, rt.clock(), actor, entity_types=_types(principal)
    )
    return flow_render.work_order(row)


@router.get(
    "/v1/work-orders",
    response_model=WorkOrderPage,
    responses=ORDER_ERRORS,
    summary="List work orders",
)
async def list_work_orders(
    request: Request,
    status: Status | None = Query(None, description="only work orders with this status"),
    assignee: str | None = Query(None, max_length=255, description="only those assigned so"),
    limit: int = Query(50, ge=1, le=1000),
    before: str | None = Query(None, max_length=2000, description="next_cursor of a page"),
    principal: Principal = require("workorders:read"),
) -> Any:
    """Work orders, newest first, a page at a time (cursor: ``next_cursor``)."""
    rt = runtime(request)
    return await run_in_threadpool(_list, rt, principal, status, assignee, limit, before)


@router.patch(
    "/v1/work-orders/{order_id}",
    response_model=WorkOrderOut,
    responses=ORDER_ERRORS,
    summary="Update a work order",
)
async def update_work_order(
    request: Request,
    body: WorkOrderPatch,
    order_id: int = Path(ge=1, le=2**63 - 1),
    principal: Principal = require("workorders:write"),
) -> Any:
    """Change a work order's status (``open``, ``in_progress``, ``done``, ``cancelled``)
    and/or its assignee (null: nobody). Audited (``work_order.update``: the changed fields
    before and after); a request that changes nothing records nothing."""
    rt, actor = runtime(request), request_actor(request)
    return await run_in_threadpool(_update, rt, principal, actor, order_id, body)
