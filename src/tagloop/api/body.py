"""Request bodies: hard size limits before any parsing, a deadline for the whole body, and
JSON depth and array bounds for the endpoints whose bodies FastAPI parses.

Endpoints that read their body themselves (ingestion, Segment, tag uploads) call
`read_limited` with their own size limit; `BodyGuard` holds every endpoint whose body
FastAPI parses (a pydantic model) to ``limits.bodies`` before FastAPI sees it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from fastapi import HTTPException, Request
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagloop.errors import PayloadTooLarge, RequestTimeout, TagloopError, ValidationFailed
from tagloop.ingest.body import JsonBounds, media_type, parse_json
from tagloop.timeutil import parse_duration
from tagloop.workspace.models import BodyLimits


@dataclass(frozen=True)
class Bounds:
    """``limits.bodies`` of a workspace, in the form the request path uses."""

    max_body_bytes: int = 1024 * 1024
    read_timeout: float = 60.0  # seconds for the whole body
    json: JsonBounds = field(default_factory=JsonBounds)

    @classmethod
    def of(cls, settings: BodyLimits) -> Bounds:
        """
        >>> Bounds.of(BodyLimits(read_timeout="1.5s", max_json_depth=8)).json.max_depth
        8
        """
        return cls(
            settings.max_body_bytes,
            parse_duration(settings.read_timeout) / 1e6,
            JsonBounds(settings.max_json_depth, settings.max_array_length),
        )


DEFAULT = Bounds()


def bounds(request: Request) -> Bounds:
    """The bounds of the app serving ``request`` (set by `tagloop.api.app.create_app`)."""
    found = getattr(request.app.state, "bounds", None)
    return found if isinstance(found, Bounds) else DEFAULT


def _timed_out(seconds: float) -> RequestTimeout:
    return RequestTimeout(
        f"the request body did not arrive within {seconds:g} s (limits.bodies.read_timeout)"
    )


async def read_limited(request: Request, limit: int, *, timeout: float | None = None) -> bytes:
    """The raw body, refusing (413) anything larger than ``limit`` bytes as it streams in,
    and (408) a body that has not arrived in full within ``timeout`` seconds (default:
    ``limits.bodies.read_timeout``), so that a client trickling bytes cannot hold a request
    open."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ValidationFailed("invalid Content-Length header")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes exceeds {limit} bytes")
    seconds = bounds(request).read_timeout if timeout is None else timeout
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise _timed_out(seconds) from None
    return b"".join(chunks)


async def _read(receive: Receive, limit: int, seconds: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"request body exceeds {limit} bytes (limits.bodies.max_body_bytes)"
                    )
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise _timed_out(seconds) from None


def _is_json(content_type: str | None) -> bool:
    kind = media_type(content_type)
    json_like = kind == "application/json" or kind.endswith("+json")
    return json_like and kind.startswith("application/")


class Refused(HTTPException):
    """A `TagloopError` raised while FastAPI reads a body: FastAPI turns any other exception
    from there into a bare 400, but lets HTTP exceptions through, to be rendered as the
    error they carry (`tagloop.api.app`)."""

    def __init__(self, error: TagloopError) -> None:
        super().__init__(error.status, error.message)
        self.error = error


async def read_parsed(receive: Receive, headers: Headers, limits: Bounds) -> bytes:
    """The whole body of a request FastAPI will parse, within ``limits``: its size (413),
    its time to arrive (408) and, for JSON, its depth and array lengths (400).

    Bodies that are not valid JSON are passed on untouched, for FastAPI to report as it
    does; only what orjson parses is checked (orjson refuses nesting past 1024 levels by
    itself, before Python's own parser, which FastAPI uses, could exhaust the stack).
    """
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise PayloadTooLarge(
            f"request body of {declared} bytes exceeds {limits.max_body_bytes} bytes "
            "(limits.bodies.max_body_bytes)"
        )
    body = await _read(receive, limits.max_body_bytes, limits.read_timeout)
    if body.strip() and _is_json(headers.get("content-type")):
        try:
            parse_json(body, limits.json)
        except ValidationFailed as exc:
            if exc.code != "invalid_json":  # too deep or too long; syntax is FastAPI's
                raise
    return body


class BodyGuard:
    """ASGI middleware holding the bodies FastAPI parses to ``limits.bodies``.

    It acts on the first read of a body, when routing is done: a route that declares a
    body (a pydantic model) gets it read in full within the limits and handed over in
    one piece; a route that reads its own body (ingestion, Segment, tag uploads) is left
    to `read_limited`, with its own size limit.
    """

    def __init__(self, app: ASGIApp, limits: Bounds) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        first = True

        async def guarded() -> Message:
            nonlocal first
            if not first:
                return await receive()
            first = False
            if getattr(scope.get("route"), "body_field", None) is None:
                return await receive()
            try:
                body = await read_parsed(receive, Headers(scope=scope), limits)
            except TagloopError as exc:
                raise Refused(exc) from None
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, guarded, send)
