"""Web sessions: a random token in an HttpOnly cookie, stored only as its SHA-256.

Like API keys, session tokens are 256-bit random values, so a fast hash is safe and a
stolen database does not hand out live sessions. Each session has its own CSRF token,
which the browser sends back in a header on every state-changing request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Row, delete, select

from tagloop.store.tables import sessions, users

LIFETIME_US = 12 * 3600 * 1_000_000  # a working day; then sign in again


@dataclass(frozen=True)
class NewSession:
    token: str  # the cookie value; never stored
    csrf: str
    expires_at: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create(conn: Connection, user_id: str, now: int, lifetime: int = LIFETIME_US) -> NewSession:
    # Expired sessions of everyone are swept here: sign-ins are rare, requests are not.
    conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    conn.execute(
        sessions.insert().values(
            id_hash=hash_token(token),
            user_id=user_id,
            csrf=csrf,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    return NewSession(token, csrf, now + lifetime)


def find(conn: Connection, token: str, now: int) -> Row[Any] | None:
    """The live session of ``token`` with its (enabled) user's roles, or None."""
    query = (
        select(
            sessions.c.csrf,
            sessions.c.expires_at,
            users.c.id.label("user_id"),
            users.c.username,
            users.c.roles,
            users.c.entity_types,
        )
        .join(users, users.c.id == sessions.c.user_id)
        .where(
            sessions.c.id_hash == hash_token(token),
            sessions.c.expires_at > now,
            users.c.disabled_at.is_(None),
        )
    )
    return cast("Row[Any] | None", conn.execute(query).first())


def end(conn: Connection, token: str) -> bool:
    return bool(
        conn.execute(delete(sessions).where(sessions.c.id_hash == hash_token(token))).rowcount
    )
