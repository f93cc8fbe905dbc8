"""The FastAPI application: routers from plugins, uniform errors, metrics and access logs."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException

from tagloop import __version__, logs
from tagloop.api import ratelimit
from tagloop.api.body import BodyGuard, Bounds, Refused
from tagloop.api.responses import JSON
from tagloop.errors import RateLimited, TagloopError
from tagloop.ingest.canonical import CanonicalEvent
from tagloop.metrics import HTTP_SECONDS
from tagloop.plugins import manager
from tagloop.runtime import Runtime

log = logs.get("tagloop.api")

DESCRIPTION = """\
tagloop keeps a profile for every business entity, computes tags on them and turns tags
into action. Authenticate with `Authorization: Bearer <API key>` (create one with
`tagloop keys create NAME --role admin`), or sign in at `POST /v1/session` for a session
cookie (then send `X-CSRF-Token` on changes). Errors are JSON objects with `code` and
`message`. Every authenticated response carries `RateLimit-Limit`, `RateLimit-Remaining`
and `RateLimit-Reset`; past the limit the answer is 429 with `Retry-After` (seconds).
"""


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="tagloop",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=JSON,
    )
    app.state.runtime = runtime
    runtime.start_writer()  # in-process group commit, unless already routed elsewhere
    for routers in manager().hook.tagloop_api_routers():
        for router in routers:
            app.include_router(router)
    from tagloop import console

    console.install(app)  # the web console at / (pages, not part of the API description)
    _install_openapi(app)
    _install_error_handlers(app)
    # Before `_install_middleware`: the body guard must be the inner middleware, so that
    # what it raises reaches the route as is (the outer one reads bodies in a task group,
    # which would wrap it in an exception group).
    _install_limits(app, runtime)
    _install_middleware(app)
    return app


def _install_limits(app: FastAPI, runtime: Runtime) -> None:
    """Body bounds for every route, and the rate limiter `tagloop.api.auth.require` uses."""
    limits = Bounds.of(runtime.workspace.project.limits.bodies)
    app.state.bounds = limits
    app.add_middleware(BodyGuard, limits=limits)
    app.state.ratelimits = rates = ratelimit.for_runtime(runtime)
    if rates is not None:
        app.router.on_shutdown.append(rates.limiter.aclose)


def from_environment() -> FastAPI:
    """The app for the workspace in ``TAGLOOP_WORKSPACE``: what each server worker
    process builds (``uvicorn --factory tagloop.api.app:from_environment``)."""
    import gc

    from tagloop.ingest.remote import WriterAddress

    logs.configure()
    runtime = Runtime.open()
    runtime.start_writer(WriterAddress.from_environment())
    app = create_app(runtime)
    # Everything loaded so far lives as long as the process: keep the garbage collector
    # from re-scanning it on every collection (measurably faster ingestion).
    gc.collect()
    gc.freeze()
    return app


def error_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSON:
    return JSON(body, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TagloopError)
    async def tagloop_error(request: Request, exc: TagloopError) -> JSON:
        if exc.status == 401:
            # Failed authentications draw from their client address's bucket.
            exc = await ratelimit.failed_authentication(request) or exc
        headers = {"WWW-Authenticate": 'Bearer realm="tagloop"'} if exc.status == 401 else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after)}
        elif exc.status == 408:
            headers = {"Connection": "close"}  # the rest of the body is not awaited
        if exc.status >= 500:
            log.warning("request failed", path=request.url.path, error=exc.message)
        return error_response(exc.status, exc.as_dict(), headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSON:
        problems = [
            {
                "where": ".".join(str(p) for p in err["loc"]),
                "message": str(err["msg"]).removeprefix("Value error, "),
            }
            for err in exc.errors()
        ]
        return error_response(
            400, {"code": "invalid_request", "message": "invalid request", "problems": problems}
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, Refused):  # a body refused while FastAPI read it
            return await tagloop_error(request, exc.error)
        from tagloop.console.web import missing_page, wants_page

        if exc.status_code == 404 and wants_page(request):  # a browser off the console's map
            return missing_page(request)
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            exc.status_code,
            {"code": codes.get(exc.status_code, "http_error"), "message": str(exc.detail)},
            dict(exc.headers) if exc.headers else None,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSON:
        # Never a stack trace to the client; the log has it, findable by the request id.
        request_id = getattr(request.state, "request_id", "-")
        log.error("unhandled error", path=request.url.path, request_id=request_id, exc_info=exc)
        return error_response(
            500,
            {
                "code": "internal_error",
                "message": f"internal error (request id {request_id}); the server log has details",
            },
        )


def _install_openapi(app: FastAPI) -> None:
    """Add the schemas of raw-body endpoints, which FastAPI cannot infer."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            extra = CanonicalEvent.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(extra.pop("$defs", {}))
            components["CanonicalEvent"] = extra
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_middleware(app: FastAPI) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Any:
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-Id"] = request.state.request_id
            decision = getattr(request.state, "ratelimit", None)
            if decision is not None:  # every response to a rate-limited caller, errors too
                response.headers.update(decision.headers())
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            HTTP_SECONDS.labels(request.method, route, str(status)).observe(elapsed)
            log.info(
                "request",
                method=request.method,
                path=request.url.path,
                status=status,
                ms=round(elapsed * 1000, 2),
                request_id=request.state.request_id,
            )
