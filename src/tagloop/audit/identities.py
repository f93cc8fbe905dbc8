"""Changes to keys and users, each stored with its audit record in one transaction: the
command line, the admin API and the demo set-up all go through here.

>>> from tagloop.store.db import Database
>>> from tagloop.store.migrate import upgrade
>>> from tagloop.audit import verify
>>> import tempfile, pathlib
>>> db = Database(f"sqlite:///{pathlib.Path(tempfile.mkdtemp()) / 'a.db'}"); upgrade(db)
>>> with db.write() as conn:
...     key = create_key(db, conn, Actor.system(), "erp", ["ingest"], now=1)
...     revoked = revoke_key(db, conn, Actor.system(), key.prefix, now=2)
>>> len(revoked), verify(db).ok
(1, True)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row

from tagloop.audit import Actor, record
from tagloop.errors import NotFound
from tagloop.store import keys as key_store
from tagloop.store import users as user_store
from tagloop.store.db import Database

__all__ = ["create_key", "create_user", "revoke_key"]


def create_key(
    db: Database,
    conn: Connection,
    actor: Actor,
    name: str,
    roles: list[str],
    now: int,
    expires_at: int | None = None,
    entity_types: list[str] | None = None,
) -> key_store.NewKey:
    key = key_store.create(conn, name, roles, now, expires_at, entity_types=entity_types)
    after = {
        "name": key.name,
        "prefix": key.prefix,
        "roles": key.roles,
        "entity_types": entity_types,
        "expires_at": expires_at,
    }
    record(
        db, conn, actor=actor, action="key.create", target_type="key", target_id=key.id, after=after
    )
    return key


def revoke_key(
    db: Database, conn: Connection, actor: Actor, prefix: str, now: int
) -> list[Row[Any]]:
    """Revoke the active keys with this prefix or id (404 if none); returns them."""
    found = key_store.active(conn, prefix)
    if not found or not key_store.revoke(conn, prefix, now):
        raise NotFound(f"no active key with prefix or id {prefix!r}")
    for row in found:
        record(
            db,
            conn,
            actor=actor,
            action="key.revoke",
            target_type="key",
            target_id=row.id,
            before={"name": row.name, "prefix": row.prefix, "revoked_at": None},
            after={"name": row.name, "prefix": row.prefix, "revoked_at": now},
        )
    return found


def create_user(
    db: Database,
    conn: Connection,
    actor: Actor,
    username: str,
    password: str,
    roles: list[str],
    now: int,
    entity_types: list[str] | None = None,
) -> user_store.NewUser:
    user = user_store.create(conn, username, password, roles, now, entity_types)
    record(
        db,
        conn,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=user.id,
        after={"username": user.username, "roles": user.roles, "entity_types": entity_types},
    )
    return user
