"""Entity profiles: one entity with its tags and events, and lists by tag."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from tagloop.api import render
from tagloop.api.auth import require, runtime
from tagloop.api.schemas import READ_ERRORS, EntityOut, EntityPage, Explanation
from tagloop.engine.explain import explain
from tagloop.errors import NotFound, ValidationFailed
from tagloop.names import suggest
from tagloop.runtime import Runtime
from tagloop.store import entities as entity_store
from tagloop.store import events as event_store
from tagloop.store import tags as tag_store

router = APIRouter(tags=["entities"])


def _check_type(rt: Runtime, entity_type: str) -> None:
    if entity_type not in rt.workspace.dictionary:
        raise NotFound(rt.workspace.dictionary.unknown(entity_type))


def _profile(rt: Runtime, entity_type: str, entity_id: str, events: int) -> dict[str, Any]:
    _check_type(rt, entity_type)
    with rt.db.read() as conn:
        row = entity_store.get(conn, entity_type, entity_id)
        if row is None:
            raise NotFound(f"no {entity_type} with id {entity_id!r}")
        body = render.entity(row)
        body["tags"] = [render.assignment(a) for a in tag_store.for_entity(conn, row.type, row.id)]
        body["events"] = [
            render.event(e) for e in event_store.recent(conn, row.type, row.id, events)
        ]
        body["tag_history"] = [
            render.tag_change(h) for h in tag_store.history(conn, row.type, row.id, limit=events)
        ]
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
    _: object = require("entities:read"),
) -> Any:
    """Attributes, current tags (with value, source, since and evidence), the most recent
    events and tag changes."""
    rt = runtime(request)
    limit = rt.workspace.project.profile_events if events is None else events
    return await run_in_threadpool(_profile, rt, entity_type, entity_id, limit)


def _page(
    rt: Runtime, entity_type: str, tag: str | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    _check_type(rt, entity_type)
    if tag is not None:
        definition = rt.workspace.tags.get(tag)
        if definition is None:
            raise NotFound(f"unknown tag {tag!r}" + suggest(tag, rt.workspace.tags))
        if definition.entity != entity_type:
            raise ValidationFailed(f"tag {tag!r} applies to {definition.entity}, not {entity_type}")
    after = render.decode_cursor(cursor) if cursor else None
    with rt.db.read() as conn:
        rows = entity_store.page(conn, entity_type, tag=tag, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [render.entity(r) for r in rows],
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
    _: object = require("entities:read"),
) -> Any:
    """Entities of a type ordered by id, with cursor pagination."""
    return await run_in_threadpool(_page, runtime(request), entity_type, tag, limit, cursor)


def _explain(rt: Runtime, entity_type: str, entity_id: str, tag: str) -> dict[str, Any]:
    _check_type(rt, entity_type)
    return explain(rt.db, rt.engine, rt.active, entity_type, entity_id, tag)


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
    _: object = require("entities:read"),
) -> Any:
    """Why the entity has the tag, or has not: the stored assignment with the evidence
    recorded when it was assigned, and the rule evaluated now with every value it read
    (for a streak, the aggregates of each counted period)."""
    return await run_in_threadpool(_explain, runtime(request), entity_type, entity_id, tag)
