"""Web sessions: ``POST /v1/session`` signs in, ``GET`` says who is calling, ``DELETE`` signs
out.

The session token travels only in an HttpOnly cookie (scripts cannot read it); the CSRF
token is returned in the body and in a readable cookie, for the page to send back in the
``X-CSRF-Token`` header. Both cookies are ``SameSite=Lax`` and ``Secure`` unless the
server is addressed as localhost over plain HTTP (the embedded default).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from tagloop.api import render
from tagloop.api.auth import CSRF_COOKIE, SESSION_COOKIE, Principal, require, runtime
from tagloop.api.body import read_limited
from tagloop.api.login import Throttles, sign_in
from tagloop.api.permissions import AUTHENTICATED
from tagloop.api.responses import JSON
from tagloop.api.schemas import ERRORS
from tagloop.errors import UnsupportedMediaType, ValidationFailed
from tagloop.ingest import body as bodies
from tagloop.store import sessions as session_store
from tagloop.timeutil import now_us

router = APIRouter(tags=["session"])

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
MAX_BODY = 8 * 1024


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    kind: str = Field(description="user (session cookie) or key (API key)")
    name: str
    roles: list[str]
    entity_types: list[str] | None = Field(description="the only entity types visible")
    csrf_token: str | None = Field(
        None, description="send in X-CSRF-Token with every POST, PUT, PATCH and DELETE"
    )
    expires_at: str | None = None


_LOGIN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": Credentials.model_json_schema()}
            for media in ("application/json", "application/x-www-form-urlencoded")
        },
    }
}


def secure(request: Request) -> bool:
    """Whether cookies need HTTPS: always, except for plain HTTP to localhost."""
    return request.url.scheme == "https" or request.url.hostname not in LOCAL_HOSTS


def client_address(request: Request) -> str:
    # The peer address; behind a proxy, the server trusts X-Forwarded-For only from the
    # addresses in server.trusted_proxies (uvicorn rewrites the peer for those).
    return request.client.host if request.client is not None else "unknown"


def _throttles(request: Request) -> Throttles:
    state = request.app.state
    if getattr(state, "login_throttles", None) is None:
        state.login_throttles = Throttles.new()
    throttles: Throttles = state.login_throttles
    return throttles


def _credentials(raw: bytes, media: str) -> Credentials:
    if media == "application/json":
        data: Any = bodies.parse_json(raw)
    elif media == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(raw.decode("utf-8"), max_num_fields=10, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise ValidationFailed("invalid form body") from None
        data = {key: values[0] for key, values in form.items()}
    else:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {media!r}; send application/json or a form"
        )
    try:
        return Credentials.model_validate(data)
    except ValidationError:
        raise ValidationFailed("send 'username' and 'password'") from None


@router.post(
    "/v1/session",
    response_model=SessionOut,
    responses={
        **{code: body for code, body in ERRORS.items() if code != 404},
        429: {"model": ERRORS[400]["model"], "description": "throttled"},
    },
    openapi_extra=_LOGIN_BODY,
    summary="Sign in",
)
async def sign_in_route(request: Request) -> JSON:
    """Sign in with a username and password (JSON or form). Sets the session cookie
    ``tagloop_session`` (HttpOnly) and ``tagloop_csrf``; the same CSRF token is in the
    body. Repeated failures lock the username and the client address for a while (429)."""
    media = bodies.media_type(request.headers.get("content-type"))
    credentials = _credentials(await read_limited(request, MAX_BODY), media)
    done = await run_in_threadpool(
        sign_in,
        runtime(request),
        _throttles(request),
        credentials.username,
        credentials.password,
        client_address(request),
        now_us(),
    )
    session = done.session
    response = JSON(
        {
            "kind": "user",
            "name": done.username,
            "roles": done.roles,
            "entity_types": done.entity_types,
            "csrf_token": session.csrf,
            "expires_at": render.ts(session.expires_at),
        }
    )
    set_session_cookies(response, request, session)
    return response


def set_session_cookies(response: Response, request: Request, session: Any) -> None:
    """The session cookie (HttpOnly) and its CSRF twin (readable by the page), for as long
    as the session lasts: the API's sign-in and the console's share them."""
    max_age = max(0, (session.expires_at - now_us()) // 1_000_000)
    for name, value, http_only in (
        (SESSION_COOKIE, session.token, True),
        (CSRF_COOKIE, session.csrf, False),
    ):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=secure(request),
            httponly=http_only,
            samesite="lax",
        )


@router.get("/v1/session", response_model=SessionOut, responses=ERRORS, summary="Who am I")
async def whoami(principal: Principal = require(AUTHENTICATED)) -> dict[str, Any]:
    """The caller: a signed-in user or an API key, with its roles and entity types."""
    return {
        "kind": principal.kind,
        "name": principal.name,
        "roles": list(principal.roles),
        "entity_types": sorted(principal.entity_types)
        if principal.entity_types is not None
        else None,
    }


@router.delete("/v1/session", status_code=204, responses=ERRORS, summary="Sign out")
async def sign_out(request: Request, _: Principal = require(AUTHENTICATED)) -> Response:
    """End the session of the cookie (with an API key there is none: nothing happens)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        rt = runtime(request)

        def end() -> None:
            with rt.db.write() as conn:
                session_store.end(conn, token)

        await run_in_threadpool(end)
    response = Response(status_code=204)
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=secure(request), samesite="lax")
    return response
