"""The audit log for administrators: ``GET /v1/audit`` (pages) and ``/v1/audit.jsonl``
(a streamed export)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tagloop.api.auth import require, runtime
from tagloop.api.schemas import ERRORS
from tagloop.audit.query import Filters, export, page
from tagloop.errors import ValidationFailed
from tagloop.runtime import Runtime
from tagloop.timeutil import parse_time

router = APIRouter(tags=["audit"])

JSONL = "application/x-ndjson"
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: ERRORS[code] for code in (400, 401, 403, 503)
}


class AuditRecordOut(BaseModel):
    seq: int = Field(description="position in the chain, from 1, without gaps")
    at: int = Field(description="when, in epoch microseconds (the hashed value)")
    time: str = Field(description="when, as ISO 8601 UTC")
    actor: str = Field(description="key name, user name, 'cli:<os user>' or 'system'")
    actor_kind: str = Field(description="key, user, cli or system")
    origin: str = Field(description="client address, 'cli' or 'system'")
    action: str = Field(description="what was done, e.g. key.create, tag.import")
    target_type: str
    target_id: str
    before: Any = Field(description="the target before the change (null if created)")
    after: Any = Field(description="the target after the change (null if removed)")
    prev_hash: str = Field(description="hash of the previous record (64 zeros for the first)")
    hash: str = Field(description="SHA-256 of this record's other fields")


class AuditPage(BaseModel):
    items: list[AuditRecordOut]
    next: int | None = Field(description="pass as ?after= for the next page; null on the last")


def _filters(
    rt: Runtime,
    actor: str | None,
    action: str | None,
    target_type: str | None,
    target_id: str | None,
    since: str | None,
    until: str | None,
) -> Filters:
    return Filters(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=_time(rt, "since", since),
        until=_time(rt, "until", until),
    )


def _time(rt: Runtime, name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value, rt.workspace.timezone)
    except ValueError as exc:
        raise ValidationFailed(f"{name}: {exc}") from None


def _lines(rt: Runtime, filters: Filters, after: int | None) -> Iterator[bytes]:
    for record in export(rt.db, filters, after=after):
        yield orjson.dumps(record) + b"\n"


def _stream(rt: Runtime, filters: Filters, after: int | None) -> StreamingResponse:
    return StreamingResponse(_lines(rt, filters, after), media_type=JSONL)


ACTOR = Query(None, max_length=255, description="only records by this actor")
ACTION = Query(None, max_length=100, description="only this action, e.g. key.create")
TARGET_TYPE = Query(None, max_length=100, description="only targets of this type, e.g. tag")
TARGET_ID = Query(None, max_length=255, description="only this target")
SINCE = Query(None, max_length=40, description="from this time on (ISO 8601, inclusive)")
UNTIL = Query(None, max_length=40, description="before this time (ISO 8601, exclusive)")
AFTER = Query(
    None, ge=0, le=2**63 - 1, description="only records with a greater seq (the `next` cursor)"
)


@router.get(
    "/v1/audit",
    response_model=AuditPage,
    responses={
        **ERROR_RESPONSES,
        200: {"content": {JSONL: {"schema": {"type": "string"}}}},
    },
    summary="Read the audit log",
)
async def list_audit(
    request: Request,
    actor: str | None = ACTOR,
    action: str | None = ACTION,
    target_type: str | None = TARGET_TYPE,
    target_id: str | None = TARGET_ID,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    limit: int = Query(100, ge=1, le=1000),
    after: int | None = AFTER,
    format: Literal["json", "jsonl"] = Query(
        "json", description="jsonl: every matching record as JSON lines (limit is ignored)"
    ),
    _: object = require("audit:read"),
) -> Any:
    """Audit records in the order they were written (``seq``), filtered, a page at a time.
    Times without an offset are read in the workspace time zone."""
    rt = runtime(request)
    filters = _filters(rt, actor, action, target_type, target_id, since, until)
    if format == "jsonl":
        return _stream(rt, filters, after)
    items, cursor = await run_in_threadpool(page, rt.db, filters, after=after, limit=limit)
    return {"items": items, "next": cursor}


@router.get(
    "/v1/audit.jsonl",
    response_class=StreamingResponse,
    responses={
        **ERROR_RESPONSES,
        200: {"content": {JSONL: {"schema": {"type": "string"}}}, "description": "records"},
    },
    summary="Export the audit log as JSON lines",
)
async def export_audit(
    request: Request,
    actor: str | None = ACTOR,
    action: str | None = ACTION,
    target_type: str | None = TARGET_TYPE,
    target_id: str | None = TARGET_ID,
    since: str | None = SINCE,
    until: str | None = UNTIL,
    after: int | None = AFTER,
    _: object = require("audit:read"),
) -> StreamingResponse:
    """Every matching record, one JSON object per line (``application/x-ndjson``), streamed
    in ``seq`` order; each line holds the hashed fields, so an export can be re-verified."""
    rt = runtime(request)
    return _stream(rt, _filters(rt, actor, action, target_type, target_id, since, until), after)
