"""Built-in API routers, registered through the `tagloop_api_routers` hook."""

from __future__ import annotations

from fastapi import APIRouter

from tagloop.hookspecs import hookimpl


@hookimpl
def tagloop_api_routers() -> list[APIRouter]:
    from tagloop.api.routers import (
        admin,
        audit,
        drafts,
        entities,
        events,
        flows,
        health,
        models,
        reviews,
        segment,
        session,
        sources,
        tags,
        work_orders,
    )

    return [
        health.router,
        events.router,
        segment.router,
        entities.router,
        tags.router,
        drafts.router,
        audit.router,
        session.router,
        admin.router,
        sources.router,
        flows.router,
        work_orders.router,
        models.router,
        reviews.router,
    ]
