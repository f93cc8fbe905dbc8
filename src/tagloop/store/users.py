"""Users of the web UI: usernames with argon2id password hashes, roles, throttling state.

Passwords, unlike API keys, are chosen by people and can be guessed from a dictionary, so
they get a slow, memory-hard hash (argon2id, the `argon2-cffi` defaults) rather than the
fast SHA-256 used for keys.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any

import uuid_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Row, delete, select, update

from tagloop.errors import ValidationFailed
from tagloop.names import check_label
from tagloop.store.tables import sessions, users

MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 hashes any length; the bound keeps a request's cost bounded

# Throttling: after LOCK_AFTER consecutive failures the account locks for LOCK_BASE_US,
# doubling with each further failure up to LOCK_MAX_US.
LOCK_AFTER = 5
LOCK_BASE_US = 30 * 1_000_000
LOCK_MAX_US = 3600 * 1_000_000

_hasher = PasswordHasher()


@dataclass(frozen=True)
class NewUser:
    id: str
    username: str
    roles: list[str]
    entity_types: list[str] | None


def lock_period(failures: int, after: int = LOCK_AFTER) -> int:
    """How long (µs) to lock after ``failures`` consecutive failures; 0 below ``after``.

    >>> [lock_period(n) // 1_000_000 for n in (4, 5, 6, 7, 20)]
    [0, 30, 60, 120, 3600]
    """
    if failures < after:
        return 0
    return int(min(LOCK_BASE_US * 2 ** min(failures - after, 32), LOCK_MAX_US))


def check_username(name: str) -> str:
    """A username in NFC form: visible text without control or format characters (an RTL
    override could make ``admin‮x`` look like another name), at most 200 characters.

    >>> check_username("王芳")
    '王芳'
    """
    name = unicodedata.normalize("NFC", name)
    try:
        return check_label(name, "username")
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise ValidationFailed(f"the password must have at most {MAX_PASSWORD} characters")
    if "\x00" in password:
        raise ValidationFailed("the password must not contain NUL characters")
    return password


def random_password() -> str:
    """24 URL-safe characters (144 bits): shown once, typed rarely."""
    return secrets.token_urlsafe(18)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _decoy() -> str:
    return _hasher.hash(secrets.token_urlsafe(18))


def password_matches(stored: str | None, password: str) -> bool:
    """Check a password; with ``stored=None`` (no such user) a decoy hash is checked so
    that an unknown username costs the same time as a wrong password."""
    try:
        return _hasher.verify(stored or _decoy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def create(
    conn: Connection,
    username: str,
    password: str,
    roles: list[str],
    now: int,
    entity_types: list[str] | None = None,
) -> NewUser:
    username = check_username(username)
    if get(conn, username) is not None:
        raise ValidationFailed(f"a user {username!r} exists already")
    user_id = str(uuid_utils.uuid7())
    conn.execute(
        users.insert().values(
            id=user_id,
            username=username,
            password_hash=hash_password(check_password(password)),
            roles=roles,
            entity_types=entity_types,
            created_at=now,
        )
    )
    return NewUser(user_id, username, roles, entity_types)


def get(conn: Connection, username: str) -> Row[Any] | None:
    name = unicodedata.normalize("NFC", username)
    return conn.execute(select(users).where(users.c.username == name)).first()


def by_id(conn: Connection, user_id: str) -> Row[Any] | None:
    return conn.execute(select(users).where(users.c.id == user_id)).first()


def listing(conn: Connection) -> list[Row[Any]]:
    return list(conn.execute(select(users).order_by(users.c.created_at)))


def disable(conn: Connection, username: str, now: int) -> Row[Any] | None:
    """Disable an active user and end its sessions; the user row as it was, or None."""
    row = get(conn, username)
    if row is None or row.disabled_at is not None:
        return None
    conn.execute(update(users).where(users.c.id == row.id).values(disabled_at=now))
    conn.execute(delete(sessions).where(sessions.c.user_id == row.id))
    return row


def set_password(conn: Connection, username: str, password: str) -> Row[Any] | None:
    """Replace the password, unlock the account and end its sessions (a changed password
    must sign out whoever used the old one)."""
    row = get(conn, username)
    if row is None:
        return None
    conn.execute(
        update(users)
        .where(users.c.id == row.id)
        .values(
            password_hash=hash_password(check_password(password)),
            failed_logins=0,
            locked_until=None,
        )
    )
    conn.execute(delete(sessions).where(sessions.c.user_id == row.id))
    return row


def failed(conn: Connection, user_id: str, now: int) -> None:
    """Count a failed login; lock the account once the count reaches `LOCK_AFTER`."""
    row = by_id(conn, user_id)
    if row is None:
        return
    failures = row.failed_logins + 1
    period = lock_period(failures)
    conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(failed_logins=failures, locked_until=now + period if period else None)
    )


def succeeded(conn: Connection, user_id: str, rehash: str | None = None) -> None:
    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
    if rehash is not None:
        values["password_hash"] = rehash
    conn.execute(update(users).where(users.c.id == user_id).values(**values))
