"""The Segment-compatible tracking API: ``/v1/track``, ``/v1/identify``, ``/v1/batch`` ...

Existing Segment SDKs work unchanged when pointed at tagloop. Unlike Segment, which answers
200 and drops bad events silently, tagloop answers 400 naming each rejected event.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from tagloop.api import ratelimit
from tagloop.api.auth import Principal, authorize, require, runtime, verify
from tagloop.api.body import bounds, read_limited
from tagloop.api.permissions import restrict_batch
from tagloop.api.responses import JSON
from tagloop.api.schemas import ERRORS, SegmentResult
from tagloop.errors import PayloadTooLarge, ValidationFailed
from tagloop.ingest import body as bodies
from tagloop.ingest import segment
from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch
from tagloop.metrics import INGEST_SECONDS
from tagloop.runtime import Runtime
from tagloop.timeutil import now_us

router = APIRouter(tags=["segment"])

_OBJECT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _ingest(
    rt: Runtime,
    messages: list[Any],
    kinds: list[str] | None,
    batch_context: dict[str, Any],
    sizes: list[int],
    ctx: ParseContext,
    partial: bool,
    principal: Principal,
) -> dict[str, Any]:
    batch = Batch()
    segment.to_events(messages, kinds, batch, ctx, batch_context, sizes)
    restrict_batch(batch, rt.workspace.dictionary, principal)
    outcome = rt.ingestor.ingest(batch, partial=partial)
    return {"success": True, **outcome.as_dict()}


async def _handle(
    request: Request, kind: str | None, partial: bool, principal: Principal | None
) -> JSON:
    started = now_us()
    rt = runtime(request)
    limit = segment.MAX_BATCH_BYTES if kind is None else segment.MAX_EVENT_BYTES
    raw = await read_limited(request, limit)
    raw = bodies.decompress(raw, request.headers.get("content-encoding"), limit)
    payload = bodies.parse_json(raw, bounds(request).json) if raw.strip() else None
    if not isinstance(payload, dict):
        raise ValidationFailed("the body must be a JSON object")
    if principal is None:  # no credential in the headers: Segment's writeKey in the body
        write_key = payload.get("writeKey")
        principal = await run_in_threadpool(
            verify, rt, write_key if isinstance(write_key, str) else None
        )
        request.state.principal = principal
        await ratelimit.check(request, principal)
        authorize(principal, "events:write")
    if kind is None:
        messages = payload.get("batch")
        if not isinstance(messages, list):
            raise ValidationFailed("'batch' must be a list of messages")
        if len(messages) > segment.MAX_BATCH_EVENTS:
            raise PayloadTooLarge(
                f"batch of {len(messages)} messages exceeds Segment's limit of "
                f"{segment.MAX_BATCH_EVENTS}"
            )
        context = payload.get("context") if isinstance(payload.get("context"), dict) else {}
        sent_at = payload.get("sentAt")
        if sent_at is not None:
            for message in messages:
                if isinstance(message, dict):
                    message.setdefault("sentAt", sent_at)
        sizes = [len(orjson.dumps(m)) for m in messages]
        kinds = None
    else:
        messages, sizes, kinds, context = [payload], [len(raw)], [kind], {}
    ws = rt.workspace
    ctx = ParseContext(
        started,
        ws.timezone,
        "segment",
        ws.project.ingest.segment.user_entity,
        ws.project.ingest.segment.group_entity,
    )
    result = await run_in_threadpool(
        _ingest, rt, messages, kinds, context or {}, sizes, ctx, partial, principal
    )
    INGEST_SECONDS.labels("segment").observe((now_us() - started) / 1e6)
    return JSON(result)


def _endpoint(kind: str | None) -> Any:
    async def endpoint(
        request: Request,
        partial: bool = Query(False, description="commit the valid messages, report the rest"),
        principal: Principal | None = require("events:write", key_in_body=True),
    ) -> JSON:
        return await _handle(request, kind, partial, principal)

    name = kind or "batch"
    endpoint.__name__ = f"segment_{name}"
    endpoint.__doc__ = (
        f"Segment `{name}` call. Authenticate with the write key as basic-auth user name "
        "or as `writeKey` in the body."
    )
    return endpoint


for _kind in segment.TYPES:
    router.add_api_route(
        f"/v1/{_kind}",
        _endpoint(_kind),
        methods=["POST"],
        response_model=SegmentResult,
        responses=ERRORS,
        openapi_extra=_OBJECT_BODY,
        summary=f"Segment {_kind}",
    )
for _path in ("/v1/batch", "/v1/import"):
    router.add_api_route(
        _path,
        _endpoint(None),
        methods=["POST"],
        response_model=SegmentResult,
        responses=ERRORS,
        openapi_extra=_OBJECT_BODY,
        summary="Segment batch",
    )
