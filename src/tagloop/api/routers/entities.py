"""Entity profiles: one entity with its tags and events, and lists by tag."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from tagloop.api import render
from tagloop.api.actor import request_actor
from tagloop.api.auth import require, runtime
from tagloop.api.permissions import Principal, check_tag, check_type
from tagloop.api.pii import Redactor, audit_read
from tagloop.api.schemas import READ_ERRORS, EntityOut, EntityPage, Explanation
from tagloop.audit import Actor
from tagloop.engine.explain import explain
from tagloop.errors import NotFound, ValidationFailed
from tagloop.runtime import Runtime
from tagloop.store import entities as entity_store
from tagloop.store import events as event_store
from tagloop.store import identities as identity_store
from tagloop.store import tags as tag_store

router = APIRouter(tags=["entities"])


def _redactor(rt: Runtime, principal: Principal) -> Redactor:
    return Redactor(rt.workspace, reveal=principal.reads_pii)


def _profile(
    rt: Runtime, who: tuple[Principal, Actor], entity_type: str, entity_id: str, events: int
) -> dict[str, Any]:
    principal, actor = who
    check_type(rt.workspace, principal, entity_type)
    pii = _redactor(rt, principal)
    with rt.db.read() as conn:
        row = entity_store.get(conn, entity_type, entity_id)
        if row is None:  # another system's id for it?
            found = identity_store.resolve(conn, entity_type, entity_id)
            row = entity_store.get(conn, entity_type, found) if found != entity_id else None
        if row is None:
            raise NotFound(f"no {entity_type} with id {entity_id!r}")
        body = pii.entity(render.entity(row))
        aliases = identity_store.aliases_of(conn, row.type, row.id)
        body["aliases"] = [render.alias(a) for a in aliases]
        # A merged entity left an alias ("merge"): only then is there a merge to read.
        merged = any(a.field == "merge" for a in aliases)
        merges = identity_store.merges_into(conn, row.type, row.id) if merged else []
        body["merged"] = [render.merge(m) for m in merges]
        body["tags"] = [
            pii.assignment(row.type, render.assignment(a))
            for a in tag_store.for_entity(conn, row.type, row.id)
        ]
        body["events"] = [
            pii.event(render.event(e)) for e in event_store.recent(conn, row.type, row.id, events)
        ]
        body["tag_history"] = [
            pii.tag_change(row.type, render.tag_change(h))
            for h in tag_store.history(conn, row.type, row.id, limit=events)
        ]
    audit_read(rt.db, actor, pii, entity_type, row.id)
    return body


@router.get(
    "/v1/entities/{entity_type}/{entity_id}",
    response_model=EntityOut,
    responses=READ_ERRORS,
    summary="Get an entity profile",
)
async def get_entity(
    request: Request,
    entity_type: str = Path(max_length=100),
    entity_id: str = Path(max_length=255),
    events: int | None = Query(None, ge=0, le=1000, description="how many recent events"),
    principal: Principal = require("entities:read"),
) -> Any:
    """Attributes, current tags (with value, source, since and evidence), the most recent
    events and tag changes. PII fields are masked as ``"***"`` without ``pii:read``."""
    rt = runtime(request)
    limit = rt.workspace.project.profile_events if events is None else events
    who = (principal, request_actor(request))
    return await run_in_threadpool(_profile, rt, who, entity_type, entity_id, limit)


def _page(
    rt: Runtime,
    who: tuple[Principal, Actor],
    entity_type: str,
    tag: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    principal, actor = who
    check_type(rt.workspace, principal, entity_type)
    if tag is not None:
        check_tag(rt.workspace, principal, tag)
        definition = rt.workspace.tags[tag]
        if definition.entity != entity_type:
            raise ValidationFailed(f"tag {tag!r} applies to {definition.entity}, not {entity_type}")
    after = render.decode_cursor(cursor) if cursor else None
    with rt.db.read() as conn:
        rows = entity_store.page(conn, entity_type, tag=tag, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    pii = _redactor(rt, principal)
    items = [pii.entity(render.entity(r)) for r in rows]
    # One audit record for the page, naming the first entity shown (the cursor's start).
    audit_read(rt.db, actor, pii, entity_type, f"page from {rows[0].id}" if rows else "")
    return {
        "items": items,
        "next_cursor": render.encode_cursor(rows[-1].id) if more and rows else None,
    }


@router.get(
    "/v1/entities/{entity_type}",
    response_model=EntityPage,
    responses=READ_ERRORS,
    summary="List entities, optionally by tag",
)
async def list_entities(
    request: Request,
    entity_type: str = Path(max_length=100),
    tag: str | None = Query(None, max_length=255, description="only entities holding this tag"),
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=2000, description="next_cursor of a page"),
    principal: Principal = require("entities:read"),
) -> Any:
    """Entities of a type ordered by id, with cursor pagination. PII fields are masked as
    ``"***"`` without ``pii:read``."""
    who = (principal, request_actor(request))
    return await run_in_threadpool(_page, runtime(request), who, entity_type, tag, limit, cursor)


def _explain(
    rt: Runtime, who: tuple[Principal, Actor], entity_type: str, entity_id: str, tag: str
) -> dict[str, Any]:
    principal, actor = who
    check_type(rt.workspace, principal, entity_type)
    check_tag(rt.workspace, principal, tag)
    pii = _redactor(rt, principal)
    with rt.db.read() as conn:
        entity_id = identity_store.resolve(conn, entity_type, entity_id)
    body = pii.explanation(explain(rt.db, rt.engine, rt.active, entity_type, entity_id, tag))
    audit_read(rt.db, actor, pii, entity_type, entity_id)
    return body


@router.get(
    "/v1/entities/{entity_type}/{entity_id}/tags/{tag}/explain",
    response_model=Explanation,
    responses=READ_ERRORS,
    summary="Explain a tag of an entity",
)
async def explain_tag(
    request: Request,
    entity_type: str = Path(max_length=100),
    entity_id: str = Path(max_length=255),
    tag: str = Path(max_length=255),
    principal: Principal = require("entities:read"),
) -> Any:
    """Why the entity has the tag, or has not: the stored assignment with the evidence
    recorded when it was assigned, and the rule evaluated now with every value it read
    (for a streak, the aggregates of each counted period). Values read from PII fields
    are masked as ``"***"`` without ``pii:read``."""
    who = (principal, request_actor(request))
    return await run_in_threadpool(_explain, runtime(request), who, entity_type, entity_id, tag)
