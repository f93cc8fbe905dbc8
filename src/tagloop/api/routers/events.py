"""``POST /v1/events``: canonical events (JSON array, object or NDJSON) and CloudEvents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from tagloop.api.auth import Principal, require, runtime
from tagloop.api.body import bounds, read_limited
from tagloop.api.permissions import restrict_batch
from tagloop.api.responses import JSON
from tagloop.api.schemas import ERRORS, IngestResult
from tagloop.errors import PayloadTooLarge, UnsupportedMediaType
from tagloop.ingest import body as bodies
from tagloop.ingest.context import ParseContext
from tagloop.ingest.event import Batch
from tagloop.ingest.formats import IngestFormat
from tagloop.metrics import INGEST_SECONDS
from tagloop.plugins import manager
from tagloop.runtime import Runtime
from tagloop.timeutil import now_us

router = APIRouter(tags=["ingestion"])

EVENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/CanonicalEvent"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/CanonicalEvent"}},
                    ]
                }
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/cloudevents+json": {"schema": {"type": "object"}},
            "application/cloudevents-batch+json": {"schema": {"type": "array"}},
        },
    }
}


def formats() -> dict[str, IngestFormat]:
    table: dict[str, IngestFormat] = {}
    for group in manager().hook.tagloop_ingest_formats():
        for fmt in group:
            for media in fmt.media_types:
                table.setdefault(media, fmt)
    return table


def run_batch(
    rt: Runtime,
    fmt: IngestFormat,
    items: bodies.Items,
    ctx: ParseContext,
    partial: bool,
    principal: Principal,
) -> dict[str, Any]:
    """Parse, check and commit on a worker thread (CPU and database work)."""
    limit = rt.workspace.project.ingest.max_event_bytes
    batch = Batch(lines=dict(enumerate(items.lines)) if items.lines else {})
    good: list[Any] = []
    positions: list[int] = []
    for index, value in enumerate(items.values):
        if index in items.bad_lines:
            batch.reject(index, "", items.bad_lines[index])
        elif items.sizes[index] > limit:
            batch.reject(index, "", f"event is {items.sizes[index]} bytes; the limit is {limit}")
        else:
            good.append(value)
            positions.append(index)
    parsed = Batch()
    fmt.to_events(good, parsed, ctx)
    # Map positions within `good` back to the request's indexes.
    batch.events.extend((positions[i], event) for i, event in parsed.events)
    for r in parsed.rejections:
        batch.reject(positions[r.index], r.field, r.reason)
    restrict_batch(batch, rt.workspace.dictionary, principal)
    return rt.ingestor.ingest(batch, partial=partial).as_dict()


@router.post(
    "/v1/events",
    summary="Send events",
    response_model=IngestResult,
    responses=ERRORS,
    openapi_extra=EVENTS_BODY,
)
async def post_events(
    request: Request,
    partial: bool = Query(False, description="commit the valid events, report the rest"),
    principal: Principal = require("events:write"),
) -> JSON:
    """Store a batch of events atomically (or, with ``partial=true``, its valid events).

    The body is a canonical event, a JSON array of them, NDJSON, or CloudEvents structured
    JSON (``application/cloudevents+json``, ``application/cloudevents-batch+json``).
    A 2xx answer means every accepted event is durably committed.
    """
    started = now_us()
    rt = runtime(request)
    settings = rt.workspace.project.ingest
    media = bodies.media_type(request.headers.get("content-type"))
    fmt = formats().get(media)
    if fmt is None:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media!r}; accepted: {', '.join(sorted(formats()))}"
        )
    raw = await read_limited(request, settings.max_body_bytes)
    raw = bodies.decompress(raw, request.headers.get("content-encoding"), settings.max_body_bytes)
    items = bodies.items(
        raw, media if fmt.name == "canonical" else "application/json", bounds=bounds(request).json
    )
    if len(items.values) > settings.max_batch_events:
        raise PayloadTooLarge(
            f"batch of {len(items.values)} events exceeds the limit of "
            f"{settings.max_batch_events} (ingest.max_batch_events)"
        )
    ctx = ParseContext(
        started, rt.workspace.timezone, fmt.name if fmt.name != "canonical" else "api"
    )
    result = await run_in_threadpool(run_batch, rt, fmt, items, ctx, partial, principal)
    INGEST_SECONDS.labels(ctx.source).observe((now_us() - started) / 1e6)
    return JSON(result)
