"""Signing in with a username and password, throttled against guessing.

Two counters of consecutive failures, each locking for an increasing period once it reaches
its threshold (`tagloop.store.users.lock_period`):

- per username: in the ``users`` row (shared by all server processes); for usernames that
  do not exist, in this process's memory, with the same thresholds, so that a lock does
  not tell whether the account exists;
- per client address: in this process's memory, with a higher threshold (several people
  may share an address). It is not reset by a successful sign-in, or an attacker with an
  account of their own could reset it between guesses.

Unknown usernames, wrong passwords and disabled accounts get the same answer, after the
same work: a missing user's password is checked against a decoy hash.
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass

from tagloop.errors import RateLimited, Unauthenticated
from tagloop.runtime import Runtime
from tagloop.store import sessions as session_store
from tagloop.store import users as user_store
from tagloop.store.sessions import NewSession
from tagloop.store.users import LOCK_AFTER, LOCK_MAX_US, lock_period

IP_LOCK_AFTER = 20
FAILED = "invalid username or password"


class LoginThrottled(RateLimited):
    """429 with ``Retry-After``: the seconds until the lock ends."""

    code = "login_throttled"


@dataclass
class _Count:
    failures: int = 0
    locked_until: int = 0
    last: int = 0


class Throttle:
    """Consecutive failures per key (a client address, an unknown username) in memory.

    >>> t = Throttle(after=2)
    >>> t.failed("ip", 0); t.failed("ip", 0); t.locked_until("ip", 1) > 1
    True
    """

    def __init__(self, after: int, max_keys: int = 100_000) -> None:
        self.after = after
        self.max_keys = max_keys
        self._counts: dict[str, _Count] = {}
        self._lock = threading.Lock()

    def locked_until(self, key: str, now: int) -> int:
        with self._lock:
            count = self._counts.get(key)
            return count.locked_until if count is not None and count.locked_until > now else 0

    def failed(self, key: str, now: int) -> None:
        with self._lock:
            count = self._counts.pop(key, None) or _Count()
            if count.last and now - count.last > LOCK_MAX_US and count.locked_until <= now:
                count = _Count()  # quiet for longer than the longest lock: start over
            count.failures += 1
            count.last = now
            period = lock_period(count.failures, self.after)
            count.locked_until = now + period if period else 0
            self._counts[key] = count  # re-inserted: the dict stays in order of last failure
            while len(self._counts) > self.max_keys:  # bounded: forget the quietest
                del self._counts[next(iter(self._counts))]

    def reset(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)


@dataclass
class Throttles:
    addresses: Throttle
    unknown_users: Throttle

    @classmethod
    def new(cls) -> Throttles:
        return cls(Throttle(IP_LOCK_AFTER), Throttle(LOCK_AFTER))


@dataclass(frozen=True)
class SignedIn:
    user_id: str
    username: str
    roles: list[str]
    entity_types: list[str] | None
    session: NewSession


def _refuse(locked_until: int, now: int) -> LoginThrottled:
    seconds = max(1, -(-(locked_until - now) // 1_000_000))
    return LoginThrottled(f"too many failed sign-ins; try again in {seconds} s", seconds)


def sign_in(
    rt: Runtime, throttles: Throttles, username: str, password: str, address: str, now: int
) -> SignedIn:
    """A new session for the user, or 401 (`FAILED`) / 429 (locked)."""
    name = unicodedata.normalize("NFC", username)
    user_key = f"user:{name}"
    row = None
    if "\x00" not in name:  # no username holds NUL (PostgreSQL could not even look it up)
        with rt.db.read() as conn:
            row = user_store.get(conn, name)
    if row is not None:
        user_locked = row.locked_until or 0
    else:
        user_locked = throttles.unknown_users.locked_until(user_key, now)
    locked = max(throttles.addresses.locked_until(address, now), user_locked)
    if locked > now:
        raise _refuse(locked, now)
    matches = user_store.password_matches(row.password_hash if row is not None else None, password)
    if row is None or not matches or row.disabled_at is not None:
        throttles.addresses.failed(address, now)
        if row is None:
            throttles.unknown_users.failed(user_key, now)
        else:
            with rt.db.write() as conn:
                user_store.failed(conn, row.id, now)
        raise Unauthenticated(FAILED)
    rehash = (
        user_store.hash_password(password) if user_store.needs_rehash(row.password_hash) else None
    )
    with rt.db.write() as conn:
        user_store.succeeded(conn, row.id, rehash)
        session = session_store.create(conn, row.id, now)
    return SignedIn(row.id, row.username, list(row.roles), row.entity_types, session)
