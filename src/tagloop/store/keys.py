"""API keys: shown once at creation, stored only as a hash, identified by a prefix.

Keys are 256-bit random tokens, so a fast hash (SHA-256) is safe to store: unlike passwords
they cannot be guessed from a dictionary, and lookups on every request must stay cheap.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import uuid_utils
from sqlalchemy import Connection, Row, select, update

from tagloop.store.tables import api_keys

KEY_PREFIX = "tl_"


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    prefix: str
    secret: str  # the full key; never stored, shown once
    roles: list[str]


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(
    conn: Connection, name: str, roles: list[str], now: int, expires_at: int | None = None
) -> NewKey:
    """Create a key; the returned `NewKey.secret` is the only copy of the full key."""
    body = secrets.token_urlsafe(32)
    secret = f"{KEY_PREFIX}{body}"
    prefix = secret[:11]
    key_id = str(uuid_utils.uuid7())
    conn.execute(
        api_keys.insert().values(
            id=key_id,
            name=name,
            prefix=prefix,
            hash=hash_key(secret),
            roles=roles,
            created_at=now,
            expires_at=expires_at,
        )
    )
    return NewKey(key_id, name, prefix, secret, roles)


def find(conn: Connection, secret: str) -> Row[Any] | None:
    return conn.execute(select(api_keys).where(api_keys.c.hash == hash_key(secret))).first()


def listing(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(api_keys).order_by(api_keys.c.created_at)))


def revoke(conn: Connection, prefix_or_id: str, now: int) -> bool:
    stmt = (
        update(api_keys)
        .where(
            (api_keys.c.prefix == prefix_or_id) | (api_keys.c.id == prefix_or_id),
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(conn.execute(stmt).rowcount)
