"""Tag definitions with their current version and how many entities hold them, and
uploads of imported tag values."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from tagloop.api import render
from tagloop.api.actor import request_actor
from tagloop.api.auth import require, runtime
from tagloop.api.body import Bounds, read_limited
from tagloop.api.permissions import Principal, check_tag
from tagloop.api.schemas import ERRORS, READ_ERRORS, ImportResult, TagDetail, TagList
from tagloop.audit import Actor
from tagloop.engine import imports
from tagloop.errors import UnsupportedMediaType, ValidationFailed
from tagloop.ingest import body as bodies
from tagloop.runtime import Runtime
from tagloop.sources import files
from tagloop.store import tags as tag_store
from tagloop.store.tables import tag_versions
from tagloop.timeutil import parse_duration

router = APIRouter(tags=["tags"])


def _describe(rt: Runtime, counts: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for active in rt.active:
        spec = active.definition.spec
        out.append(
            {
                "name": spec.name,
                "entity": spec.entity,
                "kind": spec.kind,
                "rule": spec.rule,
                "value": spec.value,
                "multi": spec.multi,
                "value_type": active.definition.value_type,
                "valid_for": spec.valid_for,
                "action": spec.action,
                "category": spec.category,
                "owner": spec.owner,
                "description": spec.description,
                "version": active.version,
                "count": counts.get(spec.name, 0),
                "defined_at": active.definition.location,
            }
        )
    return out


def _list(rt: Runtime, principal: Principal) -> dict[str, Any]:
    with rt.db.read() as conn:
        counts = tag_store.counts(conn)
    return {"items": [t for t in _describe(rt, counts) if principal.can_see(t["entity"])]}


def _detail(rt: Runtime, principal: Principal, name: str) -> dict[str, Any]:
    check_tag(rt.workspace, principal, name)
    with rt.db.read() as conn:
        counts = tag_store.counts(conn)
        versions = conn.execute(
            select(tag_versions)
            .where(tag_versions.c.tag == name)
            .order_by(tag_versions.c.version.desc())
        )
        history = [
            {
                "version": v.version,
                "fingerprint": v.fingerprint,
                "definition": v.definition,
                "workspace_revision": v.workspace_revision,
                "created_at": render.ts(v.created_at),
            }
            for v in versions
        ]
    body = next(t for t in _describe(rt, counts) if t["name"] == name)
    return {**body, "versions": history}


@router.get("/v1/tags", response_model=TagList, responses=READ_ERRORS, summary="List tags")
async def list_tags(request: Request, principal: Principal = require("tags:read")) -> Any:
    """Every tag definition of the workspace with its version and current count (for a
    principal restricted to entity types, the tags of those types)."""
    return await run_in_threadpool(_list, runtime(request), principal)


@router.get(
    "/v1/tags/{name}",
    response_model=TagDetail,
    responses=READ_ERRORS,
    summary="Get a tag definition",
)
async def get_tag(
    request: Request,
    name: str = Path(max_length=255),
    principal: Principal = require("tags:read"),
) -> Any:
    """One tag with all its stored versions."""
    return await run_in_threadpool(_detail, runtime(request), principal, name)


UPLOAD_TYPES = {"text/csv": "csv", "application/x-ndjson": "jsonl", "application/json": "json"}


def _import(
    rt: Runtime, name: str, raw: bytes, media: str, options: dict[str, Any], actor: Actor
) -> dict[str, Any]:
    tag = imports.imported_tag(rt.active, name)
    fmt = UPLOAD_TYPES[media]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(f"the body is not UTF-8 text ({exc.reason})") from None
    bounds = Bounds.of(rt.workspace.project.limits.bodies).json
    records: Iterable[files.Record] = (
        _json_records(text, bounds) if fmt == "json" else files.read_text(text, fmt)  # type: ignore[arg-type]
    )
    report = imports.ImportReport()
    values = imports.parse(
        tag,
        records,
        report,
        where="body",
        id_column=options["id_column"],
        value_column=options["value_column"],
        text=fmt == "csv",
    )
    imports.apply(
        rt.db,
        rt.engine,
        tag,
        values,
        report,
        where="body",
        now=rt.clock(),
        mode=options["mode"],
        valid_for=options["valid_for"],
        actor=actor,
        flows=rt.ingestor,
    )
    return dataclasses.asdict(report)


def _json_records(text: str, bounds: bodies.JsonBounds | None = None) -> list[files.Record]:
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if bounds is not None:  # the records' number is bounded by the body size only
        bodies.check_bounds(items, bounds, top_exempt=True)
    if not isinstance(items, list):
        raise ValidationFailed(
            'a JSON upload is an array of objects such as {"id": "c1", "value": "A"}'
        )
    return [
        files.Record(i + 1, item, "")
        if isinstance(item, dict)
        else files.Record(i + 1, None, "", "each item must be an object")
        for i, item in enumerate(items)
    ]


@router.post(
    "/v1/tags/{name}/import",
    response_model=ImportResult,
    responses={**READ_ERRORS, 413: ERRORS[413], 415: ERRORS[415]},
    summary="Upload the values of an imported tag",
)
async def import_tag(
    request: Request,
    name: str = Path(max_length=255),
    mode: Literal["replace", "merge"] = Query(
        "replace", description="replace: entities not in the upload lose the tag"
    ),
    valid_for: str | None = Query(None, max_length=20, description="e.g. 30d"),
    id_column: str = Query("id", max_length=255),
    value_column: str = Query("value", max_length=255),
    principal: Principal = require("tags:write"),
) -> Any:
    """Entity ids and values as CSV (``text/csv``, with a header), NDJSON or a JSON array.
    Records that do not fit are reported by line and skipped; the rest is applied."""
    rt = runtime(request)
    if principal.entity_types is not None:
        check_tag(rt.workspace, principal, name)
    media = bodies.media_type(request.headers.get("content-type"))
    if media not in UPLOAD_TYPES:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media!r}; accepted: {', '.join(sorted(UPLOAD_TYPES))}"
        )
    if valid_for is not None:
        try:
            parse_duration(valid_for)
        except ValueError as exc:
            raise ValidationFailed(f"valid_for: {exc}") from None
    raw = await read_limited(request, rt.workspace.project.ingest.max_body_bytes)
    options = {
        "mode": mode,
        "valid_for": valid_for,
        "id_column": id_column,
        "value_column": value_column,
    }
    actor = request_actor(request)
    return await run_in_threadpool(_import, rt, name, raw, media, options, actor)
