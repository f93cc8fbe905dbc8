"""Entity profiles (``/entities``): find an entity by id, read its attributes, tags with
their evidence, a timeline of events and tag changes, and its open work orders.

Everything is read through the API's own functions (`tagloop.api.routers.entities`), so
PII is masked without ``pii:read`` and reads of it are audited exactly as for
``GET /v1/entities/...``; "why has it got this tag" is the explain of
``GET /v1/entities/{type}/{id}/tags/{tag}/explain``. Its model scores are shown to
principals holding ``models:read`` for models they may see, as the models API decides
(`tagloop.api.routers.models`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from tagloop.api.actor import request_actor
from tagloop.api.permissions import Principal, check_type
from tagloop.api.routers.entities import _explain, _page, _profile
from tagloop.api.routers.models import _model
from tagloop.console.web import Access, guarded, page, render
from tagloop.errors import NotFound
from tagloop.runtime import Runtime

router = APIRouter(include_in_schema=False)
TIMELINE = 50
LISTED = 50  # entities a list page shows
COLUMNS = 5  # attributes a list shows
OPEN = ("open", "in_progress")


def _types(rt: Runtime, principal: Principal) -> list[str]:
    return [name for name in rt.workspace.dictionary.types if principal.can_see(name)]


def timeline(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Events and tag changes, newest first (the API's ISO texts sort as they read)."""
    items = [
        {"kind": "event", "at": e["time"], "title": e["type"], "detail": e["properties"]}
        for e in body["events"]
    ] + [
        {
            "kind": "tag",
            "at": h["at"],
            "title": f"{h['change']} {h['tag']}",
            "detail": {"value": h["value"], "previous": h["previous"], "source": h["source"]},
        }
        for h in body["tag_history"]
    ]
    return sorted(items, key=lambda item: item["at"] or "", reverse=True)


def _orders(rt: Runtime, entity_type: str, entity_id: str) -> list[Any]:
    from sqlalchemy import select

    from tagloop.store.tables import work_orders

    with rt.db.read() as conn:
        query = (
            select(work_orders)
            .where(
                work_orders.c.entity_type == entity_type,
                work_orders.c.entity_id == entity_id,
                work_orders.c.status.in_(OPEN),
            )
            .order_by(work_orders.c.id.desc())
            .limit(50)
        )
        return list(conn.execute(query))


def scores(rt: Runtime, principal: Principal, entity_type: str, entity_id: str) -> list[Any]:
    """The entity's stored model scores (what ``score('m')`` reads), each with its model's
    threshold and what it predicts; none without ``models:read``, as ``GET /v1/models``.
    A score of a model the workspace no longer defines is left out (the API knows no such
    model either)."""
    if not principal.can("models:read"):
        return []
    from sqlalchemy import select

    from tagloop.store.tables import model_scores

    c = model_scores.c
    with rt.db.read() as conn:
        rows = conn.execute(
            select(c.model, c.score, c.version, c.scored_at)
            .where(c.entity_type == entity_type, c.entity_id == entity_id)
            .order_by(c.model)
        ).all()
    shown = []
    for row in rows:
        try:
            model = _model(rt, principal, row.model)
        except NotFound:
            continue
        label = model.spec.label
        shown.append(
            {
                "model": row.model,
                "description": model.spec.description,
                "score": row.score,
                "version": row.version,
                "scored_at": row.scored_at,
                "threshold": model.spec.threshold,
                "positive": row.score >= model.spec.threshold,
                "label": label.rule,
                "reviews": label.reviews,
            }
        )
    return shown


@router.get("/entities")
async def find_page(
    request: Request,
    entity_type: str | None = Query(None, alias="type", max_length=100),
    entity_id: str | None = Query(None, alias="id", max_length=255),
    tag: str | None = Query(None, max_length=255),
    cursor: str | None = Query(None, max_length=1000),
    access: Access = page("entities:read"),
) -> Response:
    """The search form; with a type and an id, the profile (or "no such entity"); with a
    type (and a tag), a page of the entities (holding it), in id order."""
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)

    def build(principal: Principal) -> Response:
        types = _types(rt, principal)
        if entity_type and entity_id and entity_id.strip():
            target = f"/entities/{quote(entity_type, safe='')}/{quote(entity_id.strip(), safe='')}"
            return RedirectResponse(target, status_code=303)
        listing = None
        if entity_type and (tag or cursor or request.query_params.get("list")):
            found = _page(rt, (principal, actor), entity_type, tag or None, LISTED, cursor)
            listing = {**found, "columns": _columns(rt, entity_type)}
        return render(
            request,
            "entity_find.html",
            access,
            types=types,
            chosen=entity_type,
            tag=tag,
            listing=listing,
            cursor=cursor,
        )

    return await guarded(request, access, build)


def _columns(rt: Runtime, entity_type: str) -> list[str]:
    """The attributes a list shows: the type's first declared fields."""
    declared = rt.workspace.dictionary.get(entity_type)
    return list(declared.spec.fields)[:COLUMNS] if declared is not None else []


@router.get("/entities/{entity_type}/{entity_id}")
async def profile_page(
    request: Request,
    entity_type: str = Path(max_length=100),
    entity_id: str = Path(max_length=255),
    access: Access = page("entities:read"),
) -> Response:
    """One entity's profile."""
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)

    def build(principal: Principal) -> Response:
        body = _profile(rt, (principal, actor), entity_type, entity_id, TIMELINE)
        orders = _orders(rt, body["type"], body["id"]) if principal.can("workorders:read") else []
        return render(
            request,
            "entity.html",
            access,
            entity=body,
            timeline=timeline(body),
            orders=orders,
            scores=scores(rt, principal, body["type"], body["id"]),
            types=_types(rt, principal),
        )

    return await guarded(request, access, build)


@router.get("/entities/{entity_type}/{entity_id}/why/{tag}")
async def why_page(
    request: Request,
    entity_type: str = Path(max_length=100),
    entity_id: str = Path(max_length=255),
    tag: str = Path(max_length=255),
    access: Access = page("entities:read"),
) -> Response:
    """Why the entity has the tag (or not); a fragment under the tag with ``HX-Request``,
    a page of its own otherwise."""
    rt: Runtime = request.app.state.runtime
    actor = request_actor(request)

    def build(principal: Principal) -> Response:
        check_type(rt.workspace, principal, entity_type)
        body = _explain(rt, (principal, actor), entity_type, entity_id, tag)
        partial = bool(request.headers.get("hx-request"))
        template = "explain_body.html" if partial else "explain.html"
        return render(request, template, access, explanation=body)

    return await guarded(request, access, build)
