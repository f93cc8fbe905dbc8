"""Web sessions: a random token in an HttpOnly cookie, stored only as its SHA-256.

Like API keys, session tokens are 256-bit random values, so a fast hash is safe and a
stolen database does not hand out live sessions. Each session has its own CSRF token,
which the browser sends back in a header on every state-changing request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, delete

from tagloop.store.db import Database
from tagloop.store.tables import sessions

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


@dataclass(frozen=True)
class SessionGrant:
    """A live session's user, roles and CSRF token, as `grant` reads them."""

    user_id: str
    username: str
    roles: list[str]
    entity_types: list[str] | None
    csrf: str


_GRANT = (
    "SELECT u.id, u.username, u.roles, u.entity_types, s.csrf "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id_hash = ? AND s.expires_at > ? AND u.disabled_at IS NULL"
)


def grant(db: Database, token: str, now: int) -> SessionGrant | None:
    """The live session of ``token`` with its (enabled) user's roles, or None; read afresh
    on every request, so that signing out or disabling a user applies at once."""
    row = db.first(_GRANT, [hash_token(token), now])
    if row is None:
        return None
    user_id, username, roles, types, csrf = row
    return SessionGrant(user_id, username, db.json_value(roles), db.json_value(types), csrf)


def end(conn: Connection, token: str) -> bool:
    return bool(
        conn.execute(delete(sessions).where(sessions.c.id_hash == hash_token(token))).rowcount
    )
