"""The overview (``/``) and the sources page (``/sources``).

The overview renders its figures once in the page (readable without scripts) and polls
``/overview/live`` every 5 seconds through htmx for a fresh fragment; the charts read their
numbers from a JSON island in that fragment.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tagloop.api.actor import request_actor
from tagloop.api.permissions import Principal
from tagloop.console.charts import HOUR, overview
from tagloop.console.reviews import pending_count
from tagloop.console.web import Access, guarded, page, render, submitted
from tagloop.runtime import Runtime
from tagloop.sources.replay import replay
from tagloop.sources.status import source_view
from tagloop.store import deadletters as letter_store
from tagloop.store import sources as source_store
from tagloop.timeutil import from_us

router = APIRouter(include_in_schema=False)


def _sources(rt: Runtime) -> list[dict[str, Any]]:
    rows = source_store.statuses(rt.db)
    return [source_view(defn, rows.get(name)) for name, defn in rt.workspace.sources.items()]


def _figures(rt: Runtime, principal: Principal) -> dict[str, Any]:
    now = rt.clock()
    with rt.db.read() as conn:
        figures = overview(conn, now, principal.entity_types)
    figures["sources"] = _sources(rt) if principal.can("sources:read") else []
    readable = principal.can("reviews:read")
    figures["reviews_pending"] = pending_count(rt, principal) if readable else None
    tz = rt.workspace.timezone
    # Each bar is the hour that starts at its label, in the workspace time zone.
    figures["labels"] = [from_us(now - (24 - i) * HOUR, tz).strftime("%H:%M") for i in range(24)]
    return figures


@router.get("/")
async def overview_page(request: Request, access: Access = page("metrics:read")) -> Response:
    """The overview: events, entities, tag changes, flows and sources."""
    rt: Runtime = request.app.state.runtime

    def build(principal: Principal) -> Response:
        return render(request, "overview.html", access, figures=_figures(rt, principal))

    return await guarded(request, access, build)


@router.get("/overview/live")
async def overview_live(request: Request, access: Access = page("metrics:read")) -> Response:
    """The overview's figures as an HTML fragment, polled by the page."""
    rt: Runtime = request.app.state.runtime

    def build(principal: Principal) -> Response:
        return render(request, "overview_live.html", access, figures=_figures(rt, principal))

    return await guarded(request, access, build)


def _letters(rt: Runtime, principal: Principal) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        rows = letter_store.listing(conn, limit=50, replayed=False)
    # A dead letter's payload is raw source data, PII included: shown with pii:read only.
    return [
        {
            "seq": r.seq,
            "source": r.source,
            "location": r.location,
            "error": r.error,
            "received_at": r.received_at,
            "payload": r.payload if principal.reads_pii else None,
        }
        for r in rows
    ]


@router.get("/sources")
async def sources_page(request: Request, access: Access = page("sources:read")) -> Response:
    """Every source's status, throughput and lag, and the dead letters waiting."""
    rt: Runtime = request.app.state.runtime

    def build(principal: Principal) -> Response:
        return render(
            request,
            "sources.html",
            access,
            sources=_sources(rt),
            letters=_letters(rt, principal),
            replayed=request.query_params.get("replayed"),
        )

    return await guarded(request, access, build)


@router.post("/sources/replay")
async def replay_letters(request: Request, access: Access = page("replays:write")) -> Response:
    """Replay the pending dead letters (of one source when the form names it), through
    the same code as ``tagloop deadletters replay``, audited as the signed-in user."""
    fields = await submitted(request, access)
    if isinstance(fields, Response):
        return fields
    rt: Runtime = request.app.state.runtime
    source = fields.get("source") or None
    actor = request_actor(request)

    def build(_: Principal) -> Response:
        report = replay(rt, source=source, actor=actor)
        return render(
            request,
            "sources.html",
            access,
            sources=_sources(rt),
            letters=_letters(rt, _),
            replayed=str(report.replayed),
        )

    return await guarded(request, access, build)
