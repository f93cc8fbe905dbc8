"""Sources over HTTP: their status (``GET /v1/sources``) and the push endpoint of webhook
sources (``POST /v1/sources/{name}/push``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from tagloop.api import ratelimit
from tagloop.api.auth import authenticate as authenticate_key
from tagloop.api.auth import authorize, require, runtime
from tagloop.api.body import read_limited
from tagloop.api.permissions import Principal
from tagloop.api.schemas import ERRORS
from tagloop.errors import NotFound, Unauthenticated
from tagloop.sources.runner import SourceRunner
from tagloop.sources.status import source_view
from tagloop.sources.webhook import WebhookConfig, records, signature_ok
from tagloop.store import sources as source_store

router = APIRouter(tags=["sources"])
PUSH = "events:write"


class SourceOut(BaseModel):
    name: str
    kind: str
    enabled: bool
    schedule: str | None = Field(description="'every 5m' or 'cron 0 2 * * *' (pulled sources)")
    streams: list[str] = Field(description="tables, subjects or topics ('' for one stream)")
    state: str = Field(
        description="never run, running, idle, failing, stopped, or lost (its process "
        "stopped writing its status: killed or gone)"
    )
    records_read: int = 0
    events_written: int = 0
    rejected: int = Field(0, description="records sent to the dead letters")
    duplicates: int = Field(0, description="records read again and recognised (not stored)")
    lag_seconds: float | None = None
    last_success: str | None = None
    last_error: str | None = None
    failures: int = Field(0, description="consecutive failed attempts")
    next_attempt: str | None = Field(None, description="the next pull or retry")
    host: str | None = Field(None, description="the machine that runs it")
    updated: str | None = Field(None, description="when its process last wrote this status")


class PushResult(BaseModel):
    received: int = Field(description="records in the body")
    accepted: int = Field(description="events stored")
    duplicates: int = Field(description="records already stored (same id)")
    rejected: int = Field(description="records sent to the dead letters")
    errors: list[str] = Field(description="the first rejections, with their reasons")


@router.get(
    "/v1/sources",
    summary="Sources and their status",
    response_model=list[SourceOut],
    responses={code: ERRORS[code] for code in (401, 403)},
)
async def list_sources(request: Request, _: Principal = require("sources:read")) -> list[SourceOut]:
    """Every source of the workspace with what it is doing, whichever process runs it."""
    rt = runtime(request)
    rows = await run_in_threadpool(source_store.statuses, rt.db)
    return [
        SourceOut(**source_view(defn, rows.get(name)))
        for name, defn in rt.workspace.sources.items()
    ]


async def push_principal(request: Request, name: str) -> Principal:
    """A push is signed with the webhook source's secret, or sent with an API key."""
    rt = runtime(request)
    defn = rt.workspace.sources.get(name)
    config = defn.config if defn is not None and defn.kind == "webhook" else None
    header = config.signature_header if isinstance(config, WebhookConfig) else "X-Signature-256"
    sent = request.headers.get(header)
    if sent is None or config is None:
        principal = await run_in_threadpool(authenticate_key, rt, request)
    else:
        body = await read_limited(request, rt.workspace.project.ingest.max_body_bytes)
        if not signature_ok(config, name, body, sent):
            raise Unauthenticated(f"invalid signature in {header}")
        request.state.push_body = body  # the stream is read once
        principal = Principal(f"webhook:{name}", f"webhook:{name}", ("ingest",), None, "key")
    request.state.principal = principal
    await ratelimit.check(request, principal)
    authorize(principal, PUSH)
    return principal


push_principal.permission = PUSH  # type: ignore[attr-defined]


@router.post(
    "/v1/sources/{name}/push",
    summary="Push records to a webhook source",
    response_model=PushResult,
    responses={code: ERRORS[code] for code in (400, 401, 403, 404, 413, 429)},
)
async def push(request: Request, name: str, _: Principal = Depends(push_principal)) -> PushResult:
    """Records of a webhook source: one JSON object, an array, or NDJSON. Each is mapped
    with the source's mapping; those that fail go to the dead letters. Signed with
    HMAC-SHA256 of the body (``X-Signature-256: sha256=<hex>``) or sent with a key."""
    rt = runtime(request)
    defn = rt.workspace.sources.get(name)
    if defn is None or defn.kind != "webhook":
        raise NotFound(f"no webhook source named {name!r}")
    body = getattr(request.state, "push_body", None)
    if body is None:
        body = await read_limited(request, rt.workspace.project.ingest.max_body_bytes)
    runners: dict[str, SourceRunner] = request.app.state.__dict__.setdefault("push_runners", {})
    runner = runners.get(name)
    if runner is None:
        runner = runners[name] = SourceRunner(rt, defn)
    push_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:12]
    found = records(name, defn.config, body, push_id)
    tally = await runner.push(found)
    return PushResult(
        received=len(found),
        accepted=tally.written,
        duplicates=tally.duplicates,
        rejected=tally.rejected,
        errors=tally.samples,
    )
