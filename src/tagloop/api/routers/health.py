"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tagloop.api.auth import require, runtime
from tagloop.api.responses import JSON
from tagloop.errors import TagloopError
from tagloop.store.migrate import current_revision, head_revision

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    """The process is up and serving requests (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> Any:
    """The database answers and its schema is current."""
    rt = runtime(request)
    try:
        revision = await run_in_threadpool(current_revision, rt.db)
    except TagloopError as exc:
        return JSON({"status": "unavailable", "reason": exc.message}, status_code=503)
    if revision != head_revision():
        return JSON(
            {
                "status": "unavailable",
                "reason": f"schema at {revision}, expected {head_revision()}",
            },
            status_code=503,
        )
    return {"status": "ready", "database": rt.db.dialect, "schema": revision}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(_: object = require("metrics:read")) -> Response:
    """Counters and histograms in the Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
