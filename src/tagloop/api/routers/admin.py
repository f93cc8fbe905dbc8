"""Identity management for administrators: ``/v1/admin/keys`` and ``/v1/admin/users``.

A new key's secret and a generated password are in the creation answer only; listings
never show them. Every change is written to the audit log in the same transaction.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator

from tagloop.api import render
from tagloop.api.actor import request_actor
from tagloop.api.auth import require, runtime
from tagloop.api.permissions import ADMIN, check_roles
from tagloop.api.schemas import ERRORS, READ_ERRORS
from tagloop.audit import Actor, identities, record
from tagloop.errors import NotFound, ValidationFailed
from tagloop.runtime import Runtime
from tagloop.store import keys as key_store
from tagloop.store import users as user_store
from tagloop.timeutil import now_us, parse_duration

router = APIRouter(tags=["admin"])


class _Identity(BaseModel):
    roles: list[str] = Field(min_length=1, max_length=20, description="roles and pii:read")
    entity_types: list[str] | None = Field(
        None, max_length=100, description="restrict to these entity types (null: all)"
    )

    @field_validator("roles")
    @classmethod
    def _roles(cls, value: list[str]) -> list[str]:
        return check_roles(value)


class KeyIn(_Identity):
    name: str = Field(min_length=1, max_length=200, description="what the key is for")
    expires: str | None = Field(None, max_length=20, description="lifetime such as 90d")


class UserIn(_Identity):
    username: str = Field(min_length=1, max_length=200)
    password: str | None = Field(
        None, max_length=user_store.MAX_PASSWORD, description="omit for a random one"
    )


class KeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    roles: list[str]
    entity_types: list[str] | None
    created_at: str | None = None
    expires_at: str | None
    state: str = Field(description="active, expired or revoked")
    key: str | None = Field(None, description="the key itself: only when created, once")


class KeyList(BaseModel):
    items: list[KeyOut]


class UserOut(BaseModel):
    id: str
    username: str
    roles: list[str]
    entity_types: list[str] | None
    created_at: str | None = None
    state: str = Field(description="active, locked or disabled")
    password: str | None = Field(None, description="a generated password: once, when created")


class UserList(BaseModel):
    items: list[UserOut]


def _types(rt: Runtime, types: list[str] | None) -> list[str] | None:
    if types is None:
        return None
    unknown = [t for t in types if t not in rt.workspace.dictionary]
    if unknown:
        raise ValidationFailed(rt.workspace.dictionary.unknown(unknown[0]))
    return sorted(set(types))


def _key(row: Any, now: int) -> dict[str, Any]:
    state = "active"
    if row.revoked_at is not None:
        state = "revoked"
    elif row.expires_at is not None and row.expires_at <= now:
        state = "expired"
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "roles": list(row.roles),
        "entity_types": row.entity_types,
        "created_at": render.ts(row.created_at),
        "expires_at": render.ts(row.expires_at),
        "state": state,
    }


def _user(row: Any, now: int) -> dict[str, Any]:
    state = "active"
    if row.disabled_at is not None:
        state = "disabled"
    elif row.locked_until is not None and row.locked_until > now:
        state = "locked"
    return {
        "id": row.id,
        "username": row.username,
        "roles": list(row.roles),
        "entity_types": row.entity_types,
        "created_at": render.ts(row.created_at),
        "state": state,
    }


def _create_key(rt: Runtime, actor: Actor, body: KeyIn) -> dict[str, Any]:
    try:
        lifetime = parse_duration(body.expires) if body.expires else None
    except ValueError as exc:
        raise ValidationFailed(f"expires: {exc}") from None
    types = _types(rt, body.entity_types)
    now = now_us()
    expires_at = now + lifetime if lifetime else None
    with rt.db.write() as conn:
        key = identities.create_key(
            rt.db, conn, actor, body.name, body.roles, now, expires_at, entity_types=types
        )
        row = key_store.find(conn, key.secret)
    return {**_key(row, now), "key": key.secret}


def _revoke_key(rt: Runtime, actor: Actor, prefix: str) -> None:
    now = now_us()
    with rt.db.write() as conn:
        identities.revoke_key(rt.db, conn, actor, prefix, now)


def _create_user(rt: Runtime, actor: Actor, body: UserIn) -> dict[str, Any]:
    types = _types(rt, body.entity_types)
    password = body.password or user_store.random_password()
    now = now_us()
    with rt.db.write() as conn:
        user = identities.create_user(
            rt.db, conn, actor, body.username, password, body.roles, now, types
        )
        row = user_store.by_id(conn, user.id)
    return {**_user(row, now), "password": None if body.password else password}


def _disable_user(rt: Runtime, actor: Actor, username: str) -> None:
    now = now_us()
    with rt.db.write() as conn:
        row = user_store.disable(conn, username, now)
        if row is None:
            raise NotFound(f"no active user {username!r}")
        record(
            rt.db,
            conn,
            actor=actor,
            action="user.disable",
            target_type="user",
            target_id=row.id,
            before={"username": row.username, "disabled_at": None},
            after={"username": row.username, "disabled_at": now},
        )


def _list_keys(rt: Runtime) -> dict[str, Any]:
    now = now_us()
    with rt.db.read() as conn:
        return {"items": [_key(row, now) for row in key_store.listing(conn)]}


def _list_users(rt: Runtime) -> dict[str, Any]:
    now = now_us()
    with rt.db.read() as conn:
        return {"items": [_user(row, now) for row in user_store.listing(conn)]}


@router.post(
    "/v1/admin/keys", status_code=201, response_model=KeyOut, responses=ERRORS, summary="Create"
)
async def create_key(request: Request, body: KeyIn, _: object = require(ADMIN)) -> Any:
    """Create an API key. The answer holds the key itself, once; it is stored as a hash."""
    rt = runtime(request)
    return await run_in_threadpool(_create_key, rt, request_actor(request), body)


@router.get("/v1/admin/keys", response_model=KeyList, responses=ERRORS, summary="List keys")
async def list_keys(request: Request, _: object = require(ADMIN)) -> Any:
    """Every key with its prefix, roles and state; never the keys themselves."""
    return await run_in_threadpool(_list_keys, runtime(request))


@router.delete(
    "/v1/admin/keys/{prefix}", status_code=204, responses=READ_ERRORS, summary="Revoke a key"
)
async def revoke_key(
    request: Request, prefix: str = Path(max_length=64), _: object = require(ADMIN)
) -> Response:
    """Revoke a key by prefix or id: it is refused from the very next request on."""
    await run_in_threadpool(_revoke_key, runtime(request), request_actor(request), prefix)
    return Response(status_code=204)


@router.post(
    "/v1/admin/users", status_code=201, response_model=UserOut, responses=ERRORS, summary="Add"
)
async def create_user(request: Request, body: UserIn, _: object = require(ADMIN)) -> Any:
    """Add a user. Without a password one is generated and returned, once."""
    rt = runtime(request)
    return await run_in_threadpool(_create_user, rt, request_actor(request), body)


@router.get("/v1/admin/users", response_model=UserList, responses=ERRORS, summary="List users")
async def list_users(request: Request, _: object = require(ADMIN)) -> Any:
    """Every user with roles and state (active, locked, disabled); never a password."""
    return await run_in_threadpool(_list_users, runtime(request))


@router.delete(
    "/v1/admin/users/{username}",
    status_code=204,
    responses=READ_ERRORS,
    summary="Disable a user",
)
async def disable_user(
    request: Request, username: str = Path(max_length=255), _: object = require(ADMIN)
) -> Response:
    """Disable a user and end its sessions at once (the row stays, for the audit log)."""
    await run_in_threadpool(_disable_user, runtime(request), request_actor(request), username)
    return Response(status_code=204)
