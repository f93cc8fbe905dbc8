"""Authentication (API key or session cookie) and permission checks, as FastAPI dependencies.

A key is sent as ``Authorization: Bearer <key>`` or, as Segment SDKs do, as the user name of
HTTP basic auth. A browser signs in at ``POST /v1/session`` and sends the session cookie;
its state-changing requests must also carry the session's CSRF token in ``X-CSRF-Token``
(double submit: a cross-site form cannot read the token, so cannot send it).
Unauthenticated requests get 401, unauthorised ones 403. Keys and sessions are looked up on
every request, never cached, so a revocation takes effect on the very next request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from tagloop.api import ratelimit
from tagloop.api.permissions import ROLES, Principal
from tagloop.errors import Forbidden, Unauthenticated, ValidationFailed
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store import sessions as session_store
from tagloop.timeutil import now_us

__all__ = ["ROLES", "Principal", "authorize", "credential", "require", "runtime", "verify"]

SESSION_COOKIE = "tagloop_session"
CSRF_COOKIE = "tagloop_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def runtime(request: Request) -> Runtime:
    """The app's runtime, with the tag definitions another process may have put in force
    since (`Runtime.refresh`: one small read every few seconds at most)."""
    rt: Runtime = request.app.state.runtime
    rt.refresh()
    return rt


def credential(request: Request) -> str | None:
    """The API key in the Authorization header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and value.strip():
        return value.strip()
    if scheme == "basic" and value.strip():
        try:
            user, _, _password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return None


def verify(rt: Runtime, secret: str | None) -> Principal:
    """Look the key up; raise 401 for a missing, unknown, revoked or expired key."""
    if not secret:
        raise Unauthenticated("missing API key: send 'Authorization: Bearer <key>'")
    row = key_store.grant(rt.db, secret)
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("invalid or revoked API key")
    if row.expires_at is not None and row.expires_at <= now_us():
        raise Unauthenticated("API key expired")
    types = frozenset(row.entity_types) if row.entity_types is not None else None
    return Principal(row.id, row.name, tuple(row.roles), types, "key", row.limits)


def session_principal(rt: Runtime, token: str) -> tuple[Principal, str]:
    """The user of a session cookie and the session's CSRF token; 401 for a tampered,
    unknown, expired or signed-out session, or a disabled user."""
    row = session_store.grant(rt.db, token, now_us())
    if row is None:
        raise Unauthenticated("invalid or expired session: sign in again")
    types = frozenset(row.entity_types) if row.entity_types is not None else None
    return Principal(row.user_id, row.username, tuple(row.roles), types, "user"), row.csrf


def authenticate(rt: Runtime, request: Request) -> Principal:
    """The caller: by API key if one is sent, else by session cookie (with the CSRF check
    for unsafe methods)."""
    secret = credential(request)
    token = request.cookies.get(SESSION_COOKIE)
    if secret or not token:
        return verify(rt, secret)
    principal, csrf = session_principal(rt, token)
    if request.method in UNSAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf.encode()):
            raise Forbidden(f"missing or wrong CSRF token: send the {CSRF_HEADER} header")
    return principal


def require(permission: str, *, key_in_body: bool = False) -> Any:
    """A dependency that authenticates the caller and checks ``permission``.

    With ``key_in_body`` (Segment's ``writeKey``) a request without credentials in its
    headers resolves to None, and the endpoint verifies the key it finds in the body.
    """

    async def check(request: Request) -> Principal | None:
        rt = runtime(request)
        if key_in_body and not credential(request) and SESSION_COOKIE not in request.cookies:
            return None
        if rt.db.is_sqlite:
            # On SQLite the lookup (one indexed read, never blocked by writers under WAL)
            # takes less time than handing it to a worker thread and back (~0.2 ms, and
            # 1 ms at p95 when both cores are busy), so it runs on the event loop.
            principal = authenticate(rt, request)
        else:
            principal = await run_in_threadpool(authenticate, rt, request)
        request.state.principal = principal
        await ratelimit.check(request, principal)  # 429 when the caller's bucket is empty
        authorize(principal, permission)
        refuse_nul(request)
        return principal

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


def refuse_nul(request: Request) -> None:
    """400 for a NUL character in a path or query parameter. PostgreSQL cannot store or
    compare one in text (it raises, which would be a 500), and no name or id holds one;
    every route passes here, so no parameter reaches a store with one."""
    values = [*request.path_params.values(), *(v for _, v in request.query_params.multi_items())]
    if any(isinstance(value, str) and "\x00" in value for value in values):
        raise ValidationFailed("parameters must not contain NUL characters")


def authorize(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise Forbidden(f"this {principal.kind} lacks the permission {permission!r}")
