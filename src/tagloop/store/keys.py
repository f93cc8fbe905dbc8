"""API keys: shown once at creation, stored only as a hash, identified by a prefix.

Keys are 256-bit random tokens, so a fast hash (SHA-256) is safe to store: unlike passwords
they cannot be guessed from a dictionary, and lookups on every request must stay cheap.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

import uuid_utils
from sqlalchemy import Connection, Row, select, update

from tagloop.errors import ValidationFailed
from tagloop.names import check_label
from tagloop.store.db import Database
from tagloop.store.tables import api_keys

KEY_PREFIX = "tl_"


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    prefix: str
    secret: str  # the full key; never stored, shown once
    roles: list[str]
    entity_types: list[str] | None = None


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    """A key name in NFC form: visible text, no control or format characters.

    >>> check_name("erp-sync")
    'erp-sync'
    """
    try:
        return check_label(unicodedata.normalize("NFC", name), "key name")
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None


def create(
    conn: Connection,
    name: str,
    roles: list[str],
    now: int,
    expires_at: int | None = None,
    *,
    entity_types: list[str] | None = None,
) -> NewKey:
    """Create a key; the returned `NewKey.secret` is the only copy of the full key.

    ``entity_types`` restricts what the key sees (None: every type)."""
    name = check_name(name)
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
            entity_types=entity_types,
        )
    )
    return NewKey(key_id, name, prefix, secret, roles, entity_types)


@dataclass(frozen=True)
class Grant:
    """What a request's key grants, as `grant` reads it."""

    id: str
    name: str
    roles: list[str]
    entity_types: list[str] | None
    expires_at: int | None
    revoked_at: int | None
    limits: Any  # the key's own rate limit, as stored (None: its roles')


_GRANT = (
    "SELECT id, name, roles, entity_types, expires_at, revoked_at, limits "
    "FROM api_keys WHERE hash = ?"
)


def grant(db: Database, secret: str) -> Grant | None:
    """The key ``secret`` (revoked or expired ones too), read afresh on every call so that
    a revocation applies to the very next request; None for an unknown key.

    >>> from tagloop.store.migrate import upgrade
    >>> db = Database("sqlite://"); upgrade(db)
    >>> with db.write() as conn:
    ...     key = create(conn, "erp", ["ingest"], now=0, entity_types=["order"])
    >>> found = grant(db, key.secret)
    >>> found.name, found.roles, found.entity_types, found.revoked_at
    ('erp', ['ingest'], ['order'], None)
    >>> grant(db, "tl_unknown") is None
    True
    """
    row = db.first(_GRANT, [hash_key(secret)])
    if row is None:
        return None
    key_id, name, roles, types, expires_at, revoked_at, limits = row
    return Grant(
        key_id,
        name,
        db.json_value(roles),
        db.json_value(types),
        expires_at,
        revoked_at,
        db.json_value(limits),
    )


def find(conn: Connection, secret: str) -> Row[Any] | None:
    return conn.execute(select(api_keys).where(api_keys.c.hash == hash_key(secret))).first()


def listing(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(api_keys).order_by(api_keys.c.created_at)))


def active(conn: Connection, prefix_or_id: str) -> list[Row[Any]]:
    """The unrevoked keys with this prefix or id (what `revoke` would revoke)."""
    query = select(api_keys).where(
        (api_keys.c.prefix == prefix_or_id) | (api_keys.c.id == prefix_or_id),
        api_keys.c.revoked_at.is_(None),
    )
    return list(conn.execute(query))


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


def set_limits(conn: Connection, prefix_or_id: str, rate: float | None, burst: int | None) -> bool:
    """Give a key its own rate limit over its roles' (``rate`` requests per second, bursts
    of ``burst``; None keeps the role's); both None removes it. Servers apply a change
    within 10 seconds (`tagloop.api.ratelimit`)."""
    if rate is not None and not rate > 0:
        raise ValidationFailed(f"rate must be more than 0 requests per second, not {rate}")
    if burst is not None and burst < 1:
        raise ValidationFailed(f"burst must be at least 1, not {burst}")
    limits = {k: v for k, v in (("rate", rate), ("burst", burst)) if v is not None} or None
    stmt = (
        update(api_keys)
        .where((api_keys.c.prefix == prefix_or_id) | (api_keys.c.id == prefix_or_id))
        .values(limits=limits)
    )
    return bool(conn.execute(stmt).rowcount)
