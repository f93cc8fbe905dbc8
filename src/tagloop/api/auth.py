"""Authentication by API key and permission checks, as FastAPI dependencies.

A key is sent as ``Authorization: Bearer <key>`` or, as Segment SDKs do, as the user name of
HTTP basic auth. Unauthenticated requests get 401, unauthorised ones 403.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from tagloop.errors import Forbidden, Unauthenticated
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.timeutil import now_us

ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "viewer": frozenset({"entities:read", "tags:read", "metrics:read"}),
    "ingest": frozenset({"events:write"}),
}


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    roles: tuple[str, ...]

    def can(self, permission: str) -> bool:
        return any(
            "*" in ROLES.get(role, ()) or permission in ROLES.get(role, ()) for role in self.roles
        )


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
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
    with rt.db.read() as conn:
        row = key_store.find(conn, secret)
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("invalid or revoked API key")
    if row.expires_at is not None and row.expires_at <= now_us():
        raise Unauthenticated("API key expired")
    return Principal(row.id, row.name, tuple(row.roles))


def require(permission: str) -> Any:
    """A dependency that authenticates the caller and checks ``permission``."""

    async def check(request: Request) -> Principal:
        rt = runtime(request)
        principal = await run_in_threadpool(verify, rt, credential(request))
        if not principal.can(permission):
            raise Forbidden(f"this key lacks the permission {permission!r}")
        request.state.principal = principal
        return principal

    check.permission = permission  # type: ignore[attr-defined]
    return Depends(check)


def authorize(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise Forbidden(f"this key lacks the permission {permission!r}")
